"""How long Snakemake takes to plan a MOSEI-size run, and how many jobs it plans.

Writes a synthetic manifest the size of CMU-MOSEI (3,228 videos, about 23k clips) into a
scratch working directory, as if ingest had run, then times
``snakemake -n results/mosei/metrics.json`` (the whole chain: sharded feature extraction,
statistics, tokenisation, five training seeds, evaluation, aggregation) and
``snakemake -n results/mosei/grid.md`` (the same, with the paper's 216-point grid search, its
selection and the untuned runs beside them), then the same once the selection is made,
with every earlier file present: grid_select is a checkpoint, and the tuned runs (2 jobs per
seed) are planned only then. Prints the job count per rule. Median of --repeat runs, each a
fresh process.

    python benchmarks/dag.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
MOSEI_VIDEOS = 3228


def mosei_size_workdir(root: Path, seed: int = 0) -> Path:
    """A working directory holding a MOSEI-size manifest as ingest writes it; returns the
    config file that points the mosei dataset at it."""
    from thne.data.manifest import MANIFEST_COLUMNS

    rng = np.random.default_rng(seed)
    rows = [
        (f"vid{v:04d}_{k}", f"vid{v:04d}", 0.0, 3.0, "train", 0.5, "words", f"m/{v}_{k}.mp4")
        for v in range(MOSEI_VIDEOS)
        for k in range(int(rng.integers(4, 11)))
    ]
    raw = root / "raw"
    raw.mkdir(parents=True)
    (raw / "label.csv").write_text("video_id,clip_id,text,label,mode\n")
    data = root / "data" / "mosei"
    data.mkdir(parents=True)
    pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).to_csv(
        data / "manifest.tsv", sep="\t", index=False
    )
    (data / "excluded.tsv").write_text("clip_id\tvideo_id\tsplit\tmedia\treason\n")
    (data / "splits.json").write_text("{}\n")
    # Planned as a user plans: from a repository root (links to this checkout's workflow).
    for name in "Snakefile workflow config profiles thne resources environment.yml".split():
        (root / name).symlink_to(REPO / name)
    cfg = root / "mosei_size.yaml"
    cfg.write_text(
        yaml.safe_dump({"datasets": {"mosei": {"source": {"layout": "mmsa", "raw_dir": str(raw)}}}})
    )
    return cfg


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plan(root: Path, cfg: Path, *targets: str) -> tuple[float, dict[str, int]]:
    """Seconds to plan ``targets`` in ``root``, and the planned jobs per rule."""
    cmd = [sys.executable, "-m", "snakemake", *targets, "--configfile", str(cfg)]
    cmd += ["-n", "--quiet", "rules"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    out = proc.stdout + proc.stderr
    return seconds, {r: int(n) for r, n in re.findall(r"^\s*(\w+)\s+(\d+)\s*$", out, re.M)}


def timed(root: Path, cfg: Path, target: str, repeat: int) -> tuple[float, float, list, dict]:
    runs, cpus = [], []
    for _ in range(repeat):
        cpu0 = _children_cpu()
        runs.append(plan(root, cfg, target))
        cpus.append(_children_cpu() - cpu0)
    return statistics.median(s for s, _ in runs), statistics.median(cpus), runs, runs[0][1]


def after_selection(root: Path, cfg: Path) -> None:
    """``root`` as it is once the grid search's selection is made: every file of the plan
    before it present and up to date (empty files, dated in order by ``snakemake --touch``), a
    best.json choosing Table 2's MOSI point, and no tuned run or report yet."""
    # The target first: --configfile takes every word after it.
    snakemake = [sys.executable, "-m", "snakemake", "results/mosei/grid.md"]
    snakemake += ["--configfile", str(cfg)]
    summary = subprocess.run(
        [*snakemake, "--summary"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    ).stdout
    for line in summary.splitlines()[1:]:
        path = root / line.split("\t", 1)[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
    point = {"batch_size": 32, "lr": 0.001, "alpha": 0.3, "beta": 0.1}
    point.update(visual_hidden=32, acoustic_hidden=32)
    (root / "results/mosei/grid/thne/best.json").write_text(json.dumps({"point": point}))
    subprocess.run(
        [*snakemake, "--touch", "--cores", "1", "--quiet", "all"],
        capture_output=True,
        check=True,
        cwd=root,
    )
    for name in ("tuned", "grid.md", "figures/grid.png", "report/grid.html"):
        target = root / "results/mosei" / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cfg = mosei_size_workdir(root)
        clips = len(pd.read_csv(root / "data/mosei/manifest.tsv", sep="\t"))
        print(f"MOSEI-size manifest: {MOSEI_VIDEOS} videos, {clips} clips")
        plans = [("results/mosei/metrics.json", ""), ("results/mosei/grid.md", "")]
        plans.append(("results/mosei/grid.md", "after the selection, the rest up to date"))
        for target, when in plans:
            if when:
                after_selection(root, cfg)
            seconds, cpu, runs, jobs = timed(root, cfg, target, args.repeat)
            total = jobs.pop("total")
            print(
                f"snakemake -n {target}{f' ({when})' if when else ''}: {total} jobs, planned in"
                f" {seconds:.1f} s wall, {cpu:.1f} s CPU"
            )
            print(f"  (median of {args.repeat}; runs: {', '.join(f'{s:.1f}' for s, _ in runs)} s)")
            for rule, n in sorted(jobs.items(), key=lambda kv: -kv[1]):
                print(f"  {rule:16s} {n}")


if __name__ == "__main__":
    main()
