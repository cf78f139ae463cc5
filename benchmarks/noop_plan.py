"""CPU and wall time of a no-op plan, `snakemake -n results/demo/metrics.json`, where every
result is up to date: what each call pays before a job runs (every job parses the workflow).

Builds the target on a demo subset (one seed, one epoch), once with this checkout's code and,
with ``--base REV``, once with that revision's (in a scratch worktree), then times
``--repeat`` dry runs of each, each a fresh process, and prints the medians: user + system
CPU seconds of the process and its children, and wall seconds.

    python benchmarks/noop_plan.py [--base 08466c8] [--repeat 5]

Wall time on a machine with a SLURM client but no cluster includes about 9 s that the SLURM
executor plugin waits for `scontrol show config` when Snakemake starts; CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from test_workflow import demo_subset, write_config  # noqa: E402
from upgrade_plan import link_root, snakemake  # noqa: E402

TARGET = "results/demo/metrics.json"


def timed(root: Path, source: Path, config: Path) -> tuple[float, float]:
    """CPU (user + system, children included) and wall seconds of one no-op dry run."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", TARGET, "--configfile", str(config)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "Nothing to be done" not in proc.stdout + proc.stderr:
        sys.exit(f"not a no-op in {root}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(work: Path, source: Path, raw: Path, repeat: int) -> tuple[float, float]:
    root = work / "root"
    root.mkdir(parents=True)
    link_root(root, source)
    config = write_config(work / "cfg.yaml", raw)
    config.write_text(yaml.safe_dump(yaml.safe_load(config.read_text())))
    snakemake(root, source, TARGET, "--configfile", str(config), "--cores", "2")
    runs = [timed(root, source, config) for _ in range(repeat)]
    return statistics.median(c for c, _ in runs), statistics.median(w for _, w in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="a git revision to time beside this checkout")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="thne-noop-"))
    try:
        raw = demo_subset(work / "raw", {"train": 6, "valid": 3, "test": 3})
        sources = {"this checkout": REPO}
        if args.base:
            old = work / "old"
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.base],
                check=True,
                capture_output=True,
            )
            sources = {args.base: old, **sources}
        for name, source in sources.items():
            cpu, wall = measure(work / name.replace(" ", "_"), source, raw, args.repeat)
            print(f"{name}: median of {args.repeat}: {cpu:.2f} s CPU, {wall:.2f} s wall")
    finally:
        if args.base:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(work / "old")]
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
