"""Time the demo from a clean copy: `snakemake --cores 2 results/demo/metrics.json`.

The tracked files of a checkout (``--source``, default this one) are copied to a fresh folder,
so nothing from an earlier run (data/, features/, results/, .snakemake/) is reused, and the
workflow runs there with that copy's ``thne`` first on the import path. Printed:

- per stage (one row per rule with a ``benchmark:`` file), the number of jobs and the sums of
  their wall time, CPU time and bytes written, from those files;
- the whole run: wall time, CPU time of Snakemake and every job (``getrusage`` of the waited
  child processes) and bytes written by all of them (the kernel's block-output count).

Snakemake samples a job's counters every few seconds, so a stage's bytes written miss what
its jobs write just before they end (a training job's ``model.safetensors``): read them as lower
bounds, and the whole run's figure as the total.

Wall time depends on what else the machine runs; CPU time and bytes written much less so:
quote those. Jobs run in parallel, so stage wall times add up to more than the run's.

    python benchmarks/demo_time.py                    # this checkout
    python benchmarks/demo_time.py --source ../main   # another checkout, for a before/after
    python benchmarks/demo_time.py --cold             # with librosa's code compiled afresh
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def clean_copy(source: Path, dest: Path) -> None:
    """The files git tracks in ``source`` (committed or staged, as they are on disk)."""
    names = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z"], check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, names.split("\0")):
        src = source / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def stage_table(bench_dir: Path) -> pd.DataFrame:
    """One row per stage: jobs, and summed wall s, CPU s and MB written of their benchmark files."""
    rows = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        rel = path.relative_to(bench_dir)
        stage = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        b = pd.read_csv(path, sep="\t")
        rows.append(
            {
                "stage": stage,
                "wall_s": float(b["s"].iloc[0]),
                "cpu_s": float(b["cpu_time"].iloc[0]),
                "written_mb": float(b["io_out"].iloc[0]),
            }
        )
    if not rows:
        return pd.DataFrame(columns=["stage", "jobs", "wall_s", "cpu_s", "written_mb"])
    jobs = pd.DataFrame(rows)
    table = jobs.groupby("stage", sort=False).agg(
        jobs=("wall_s", "size"),
        wall_s=("wall_s", "sum"),
        cpu_s=("cpu_s", "sum"),
        written_mb=("written_mb", "sum"),
    )
    return table.reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout to copy and time")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--target", default="results/demo/metrics.json")
    parser.add_argument("--keep", action="store_true", help="keep the copy (path is printed)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="start from an empty cache of librosa's compiled code, as a new machine does "
        "before `make install` compiles it (else $THNE_CACHE_DIR's, or ~/.cache/thne's)",
    )
    parser.add_argument(
        "--configfile", type=Path, help="a config to merge over the copy's (e.g. other threads)"
    )
    args = parser.parse_args()

    source = args.source.resolve()
    work = Path(tempfile.mkdtemp(prefix="thne-demo-time-"))
    clean_copy(source, work)
    env = {**os.environ, "PYTHONPATH": str(work)}
    if args.cold:
        env["THNE_CACHE_DIR"] = str(work / ".thne-cache")
    # The console scripts (snakemake, thne) of this interpreter's environment.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = ["snakemake", "--cores", str(args.cores), args.target]
    if args.configfile:
        cmd += ["--configfile", "config/config.yaml", str(args.configfile.resolve())]
    print(f"source {source}\ncopy   {work}\nrun    {' '.join(cmd)}", flush=True)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        print(run.stdout[-4000:], run.stderr[-8000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"snakemake failed (exit {run.returncode}); the copy is kept at {work}")

    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # ru_oublock counts 512-byte blocks written to storage by every waited descendant.
    written_mb = (after.ru_oublock - before.ru_oublock) * 512 / 1e6

    table = stage_table(work / "benchmarks/out/demo")
    print(f"\n{'stage':16s} {'jobs':>5s} {'wall s':>9s} {'CPU s':>9s} {'written MB':>11s}")
    for r in table.itertuples():
        print(f"{r.stage:16s} {r.jobs:5d} {r.wall_s:9.1f} {r.cpu_s:9.1f} {r.written_mb:11.1f}")
    print(
        f"{'sum of jobs':16s} {int(table.jobs.sum()):5d} {table.wall_s.sum():9.1f} "
        f"{table.cpu_s.sum():9.1f} {table.written_mb.sum():11.1f}"
    )
    print(f"{'whole run':16s} {'':5s} {wall:9.1f} {cpu:9.1f} {written_mb:11.1f}")
    print(
        f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end on "
        f"{os.cpu_count()} CPUs: wall time is only as good as the machine was idle"
    )
    print(
        "per-stage MB come from Snakemake's sampling of each job, which misses what a job "
        "writes in its last seconds (a training job's model.safetensors); the whole run's MB are "
        "the kernel's count"
    )
    if args.keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
