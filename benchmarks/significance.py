"""How long the paired bootstrap takes on a CMU-MOSEI-size test split.

Two synthetic models, each with --seeds seeds' predictions for 4,659 test clips (CMU-MOSEI's
test split, t-HNE paper Table 1; 5 seeds, as the mosei config), labels on MOSEI's grid of
thirds in [-3, 3]; times :func:`thne.evaluate.significance.compare` (10,000 resamples, every
metric, every seed of both models scored on each resample) and prints wall and CPU time,
median of --repeat runs.

    OMP_NUM_THREADS=1 python benchmarks/significance.py [--clips 4659] [--resamples 10000] \
        [--seeds 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from thne.evaluate.significance import compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4659)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    truth = np.round(rng.uniform(-3, 3, args.clips) * 3) / 3
    a = [truth + rng.normal(0, 0.70, args.clips) for _ in range(args.seeds)]
    b = [truth + rng.normal(0, 0.72, args.clips) for _ in range(args.seeds)]
    walls, cpus = [], []
    for _ in range(args.repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = compare(a, b, truth, resamples=args.resamples)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    lo, hi = result["mae"]["interval"]
    print(
        f"{args.clips} clips, {args.resamples} resamples, 8 metrics, 2 models x {args.seeds} seeds"
    )
    print(f"wall {statistics.median(walls):.2f} s, CPU {statistics.median(cpus):.2f} s (median)")
    print(f"MAE difference interval [{lo:+.4f}, {hi:+.4f}]")


if __name__ == "__main__":
    main()
