"""How long the paired bootstrap takes on a CMU-MOSEI-size test split, drawing clips or whole
videos, and how much wider drawing videos makes an interval where a video's clips err together.

Synthetic data: 4,659 test clips (CMU-MOSEI's test split, t-HNE paper Table 1) in --videos
videos (default 640: MOSEI averages about 7 clips a video), labels on MOSEI's grid of thirds in
[-3, 3]. Timing: --variants models (t-HNE and its 7 variants by default) with --seeds seeds each
(5, as the mosei config), every variant compared with t-HNE by
:func:`thne.evaluate.significance.compare_many` (10,000 resamples, every metric, all seeds of
all models scored on each resample); wall and CPU time per unit, median of --repeat runs.
Widths: one model whose error has a per-video part (a speaker it reads badly, std --effect)
against one without, the MAE difference's 95 % interval by clip and by video.

    OMP_NUM_THREADS=1 python benchmarks/significance.py [--clips 4659] [--videos 640] \
        [--resamples 10000] [--seeds 5] [--variants 8] [--effect 0.3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from thne.evaluate.significance import UNITS, compare, compare_many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4659)
    parser.add_argument("--videos", type=int, default=640)
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--variants", type=int, default=8)
    parser.add_argument("--effect", type=float, default=0.3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    truth = np.round(rng.uniform(-3, 3, args.clips) * 3) / 3
    video = np.sort(rng.integers(0, args.videos, args.clips))  # unequal videos, as in MOSEI
    videos = [f"v{v}" for v in video]
    models = {
        f"m{k}": [truth + rng.normal(0, 0.70 + 0.01 * k, args.clips) for _ in range(args.seeds)]
        for k in range(args.variants)
    }
    print(
        f"{args.clips} clips in {len(set(videos))} videos, {args.resamples} resamples, "
        f"8 metrics, {args.variants} models x {args.seeds} seeds"
    )
    times = {}
    for unit in UNITS:
        walls, cpus = [], []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            compare_many(
                models, truth, reference="m0", unit=unit, videos=videos, resamples=args.resamples
            )
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        times[unit] = statistics.median(walls)
        print(f"{unit:>5}: wall {times[unit]:.2f} s, CPU {statistics.median(cpus):.2f} s (median)")
    print(f"video / clip wall time: {times['video'] / times['clip']:.2f}")

    shared = rng.normal(0, args.effect, args.videos)[video]
    variant = truth + shared + rng.normal(0, 0.7, args.clips)
    reference = truth + rng.normal(0, 0.7, args.clips)
    print(f"MAE difference, per-video error std {args.effect}:")
    width = {}
    for unit in UNITS:
        r = compare(variant, reference, truth, unit=unit, videos=videos, resamples=args.resamples)[
            "mae"
        ]
        lo, hi = r["interval"]
        width[unit] = hi - lo
        print(f"{unit:>5}: {r['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}], width {hi - lo:.4f}")
    print(f"video / clip width: {width['video'] / width['clip']:.2f}")


if __name__ == "__main__":
    main()
