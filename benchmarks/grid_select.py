"""How long ``thne grid-select`` takes on the paper's MOSEI grid (216 points).

Writes a temporary grid of synthetic ``valid_metrics.json`` files for the t-HNE paper's search
(section 4.3): batch_size {32, 64}, lr {5e-4, 1e-3, 5e-3}, alpha and beta {0.05, 0.1, 0.3},
visual_hidden and acoustic_hidden {32, 64}: 216 points, --seeds search seeds each. Times the
whole command as a subprocess (interpreter start, imports, argument parsing, reading every
run, writing best.json) and the library call :func:`thne.evaluate.grid.select` alone; prints
wall and CPU time, median of --repeat runs. The subprocess's CPU time is that of the child
(``resource.getrusage(RUSAGE_CHILDREN)``).

    python benchmarks/grid_select.py [--seeds 1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from thne.evaluate.grid import select
from thne.grid import grid_points

MOSEI_GRID = {
    "batch_size": [32, 64],
    "lr": [5.0e-4, 1.0e-3, 5.0e-3],
    "alpha": [0.05, 0.1, 0.3],
    "beta": [0.05, 0.1, 0.3],
    "visual_hidden": [32, 64],
    "acoustic_hidden": [32, 64],
}


def write_grid(grid_dir: Path, seeds: list[int]) -> list[str]:
    rng = np.random.default_rng(0)
    runs = []
    for name in grid_points(MOSEI_GRID):
        for seed in seeds:
            run = grid_dir / name / f"seed{seed}"
            run.mkdir(parents=True)
            metrics = {
                "variant": "thne",
                "seed": seed,
                "best_epoch": int(rng.integers(1, 30)),
                "epochs": 40,
                "n_clips": {"train": 16326, "valid": 1871, "test": 4659},
                "left_out": [],
                "mae": float(rng.uniform(0.52, 0.62)),
                "corr": float(rng.uniform(0.70, 0.79)),
                "acc7": float(rng.uniform(0.48, 0.54)),
            }
            (run / "valid_metrics.json").write_text(json.dumps(metrics, indent=2))
            runs.append(str(run / "valid_metrics.json"))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    seeds = list(range(1, args.seeds + 1))
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "results" / "mosei" / "grid" / "thne"
        runs = write_grid(grid, seeds)
        out = grid / "best.json"
        command = [
            sys.executable, "-m", "thne.cli", "grid-select",
            "--axes", json.dumps(MOSEI_GRID), "--seeds", ",".join(map(str, seeds)),
            "--grid-dir", str(grid), "--runs", *runs, "--dataset", "mosei",
            "--variant", "thne", "--out", str(out),
        ]  # fmt: skip
        walls, cpus = [], []
        for _ in range(args.repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            w0 = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, env=os.environ.copy())
            walls.append(time.perf_counter() - w0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        chosen = json.loads(out.read_text())["name"]
        lib_walls, lib_cpus = [], []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            select(runs, out, axes=MOSEI_GRID, seeds=seeds, grid_dir=grid, dataset="mosei",
                   variant="thne")  # fmt: skip
            lib_walls.append(time.perf_counter() - w0)
            lib_cpus.append(time.process_time() - c0)
    n = len(grid_points(MOSEI_GRID))
    print(f"{n} points x {len(seeds)} seed(s) = {len(runs)} valid_metrics.json; chose {chosen}")
    print(
        f"thne grid-select (subprocess): wall {statistics.median(walls):.3f} s, "
        f"CPU {statistics.median(cpus):.3f} s (median of {args.repeat})"
    )
    print(
        f"thne.evaluate.grid.select (library): wall {1000 * statistics.median(lib_walls):.1f} ms, "
        f"CPU {1000 * statistics.median(lib_cpus):.1f} ms (median of {args.repeat})"
    )


if __name__ == "__main__":
    main()
