"""What an upgrade of thne plans on a finished build: no extraction job may be among it.

Builds a demo subset with the code of ``--base`` (a git revision, checked out in a scratch
worktree): the metrics, the report pages, the demo grid and a folder scored by ``predict:``.
Then plans the same targets with this checkout's code (``snakemake -n``) and prints, per rule,
the jobs planned and Snakemake's reasons. Exits 1 when a job of a dataset's extraction rules
(ingest, import, the shards, merges, statistics, tokenization) is planned: a researcher who
pulls the new code onto a finished MOSEI must not redo its feature extraction. (The shards of
a predict: folder, a few videos a user scores, are reported, not refused.)

    python benchmarks/upgrade_plan.py --base 08466c8 [--workdir /tmp/upgrade] [--keep]

The build takes a few CPU-minutes (seven variants, four grid points, one epoch each).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_workflow import demo_subset, write_config  # noqa: E402

from conftest import ROOT_ENTRIES  # noqa: E402

EXTRACTION = (
    "ingest",
    "import_features",
    "unpack_archive",
    "audio_shard",
    "visual_shard",
    "openface_plan",
    "openface_shard",
    "merge_features",
    "feature_stats",
    "tokenize",
)
TARGETS = (
    "results/demo/metrics.json",
    "results/demo/report/index.html",
    "results/demo/grid.md",
    "results/demo/predict/mine/predictions.tsv",
)


def link_root(root: Path, source: Path) -> None:
    """``root`` laid out as a clone of ``source``: its code, config and resources linked."""
    for name in ROOT_ENTRIES:
        link = root / name
        if link.is_symlink():
            link.unlink()
        link.symlink_to(source / name)


def snakemake(root: Path, source: Path, *args: str) -> str:
    """``snakemake *args`` from ``root``, running the ``thne`` commands of ``source``."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc.stdout + proc.stderr


def planned(text: str) -> dict[str, int]:
    """The job counts of a dry run's 'Job stats' table, by rule."""
    counts = {}
    table = text.split("Job stats:", 1)[-1] if "Job stats:" in text else ""
    for line in table.splitlines()[3:]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision that builds first")
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder (default: a new temporary one)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="thne-upgrade-"))
    old, root = work / "old", work / "root"
    if not (root / "built").exists():
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(old), args.base],
            check=True,
            capture_output=True,
        )
        raw = demo_subset(work / "raw", {"train": 6, "valid": 3, "test": 3})
        root.mkdir()
        link_root(root, old)
        cfg = yaml.safe_load(write_config(work / "cfg.yaml", raw).read_text())
        folder = work / "videos"
        folder.mkdir()
        for media in sorted((raw / "Raw").rglob("*.mp4"))[-2:]:
            shutil.copy(media, folder / media.name)
            (folder / f"{media.stem}.txt").write_text("a clip to score\n")
        cfg["predict"] = {"mine": {"dataset": "demo", "input": str(folder), "seeds": [1]}}
        (work / "cfg.yaml").write_text(yaml.safe_dump(cfg))
        print(f"building with {args.base} in {root} ...", flush=True)
        snakemake(root, old, "--configfile", str(work / "cfg.yaml"), "--cores", "2", *TARGETS)
        (root / "built").touch()
    link_root(root, REPO)
    text = snakemake(root, REPO, "--configfile", str(work / "cfg.yaml"), "-n", *TARGETS)
    counts = planned(text)
    print("planned with this checkout:", counts or "nothing")
    for reason in sorted(set(re.findall(r"reason: (.*)", text))):
        print(f"  reason: {reason}")
    extraction = sorted(set(counts) & set(EXTRACTION))
    if not args.keep and not args.workdir:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)])
        shutil.rmtree(work, ignore_errors=True)
    if extraction:
        sys.exit(f"extraction planned again: {', '.join(extraction)}")
    print("no extraction job planned")


if __name__ == "__main__":
    main()
