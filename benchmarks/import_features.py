"""Importing a MOSEI-size set of CMU SDK sequences: wall time, CPU time and peak memory.

Writes, once, synthetic sequences the size of CMU-MOSEI's with the SDK's own writer: 3,228
videos of the standard folds (and one video in no fold) with 23,259 label intervals of about
7 s, a words sequence (a word every 0.3 s, pauses between), COVAREP-like acoustic rows (74
columns at 100 Hz, with a few NaN and -inf rows as the real COVAREP has) and Facet-like visual
rows (35 columns at 30 Hz), each covering its whole video. They are cached under
benchmarks/out/import_features/ (about 8 GB). Then runs ``thne import-features`` on them in a
child process and prints its wall time, CPU time and peak resident memory.

    python benchmarks/import_features.py [--videos 3228] [--clips 23259] [--keep-output]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "out" / "import_features"
ACOUSTIC = (74, 100.0)
VISUAL = (35, 30.0)
WORD_SECONDS = 0.3


class LazyRows:
    """Rows the SDK's writer turns into an array only when it writes them: the whole set never
    sits in memory (the writer needs ``shape`` and array conversion, nothing else)."""

    def __init__(self, n: int, dim: int, seed: int, nonfinite: bool) -> None:
        self.shape = (n, dim)
        self.dtype = np.dtype(np.float32)
        self.seed, self.nonfinite = seed, nonfinite

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = np.random.default_rng(self.seed).standard_normal(self.shape, dtype=np.float32)
        if self.nonfinite:  # as in COVAREP: unvoiced frames with -inf, some NaN rows
            rows[::97, 1] = -np.inf
            rows[5::211, :] = np.nan
        return rows if dtype is None else rows.astype(dtype)


def plan(videos: int, clips: int, seed: int = 0) -> dict[str, list[tuple[float, float]]]:
    """video id -> label intervals: standard-fold ids of MOSEI, clips of 3-12 s with gaps."""
    from thne.data.splits import standard_folds

    ids = sorted(standard_folds("mosei"))
    ids += [f"nofold{i:03d}" for i in range(max(0, videos - len(ids)))]
    ids = ids[:videos]
    rng = np.random.default_rng(seed)
    per_video = np.full(videos, clips // videos)
    per_video[: clips - per_video.sum()] += 1
    layout = {}
    for vid, n in zip(ids, per_video, strict=True):
        t, intervals = float(rng.uniform(0.5, 3.0)), []
        for _ in range(n):
            length = float(rng.uniform(3.0, 11.6))
            intervals.append((round(t, 3), round(t + length, 3)))
            t += length + float(rng.uniform(0.2, 3.0))
        layout[vid] = intervals
    return layout


def write_sequences(folder: Path, videos: int, clips: int) -> dict[str, Path]:
    from thne.data.sdk import write_sequence

    paths = {
        role: folder / f"CMU_MOSEI_{name}.csd"
        for role, name in (
            ("labels", "Labels"),
            ("words", "TimestampedWords"),
            ("acoustic", "COVAREP"),
            ("visual", "VisualFacet42"),
        )
    }
    stamp = folder / "complete.json"
    wanted = {"videos": videos, "clips": clips}
    if stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    layout = plan(videos, clips)
    rng = np.random.default_rng(1)
    labels, words, acoustic, visual = {}, {}, {}, {}
    vocabulary = np.array([w.encode() for w in "i think this movie was really good bad".split()])
    for k, (vid, intervals) in enumerate(layout.items()):
        iv = np.array(intervals)
        labels[vid] = {
            "intervals": iv,
            "features": np.concatenate(
                [rng.uniform(-3, 3, (len(iv), 1)), rng.uniform(0, 3, (len(iv), 6))], axis=1
            ).astype(np.float32),
        }
        duration = float(iv[-1, 1]) + 2.0
        starts = np.arange(0.0, duration, WORD_SECONDS)
        tokens = rng.choice(vocabulary, size=len(starts))
        tokens[1::4] = b"sp"
        words[vid] = {
            "intervals": np.stack([starts, starts + WORD_SECONDS], axis=1),
            "features": tokens.astype("S12")[:, None],
        }
        for store, (dim, rate), nonfinite in (
            (acoustic, ACOUSTIC, True),
            (visual, VISUAL, False),
        ):
            n = int(duration * rate)
            t = np.arange(n) / rate
            store[vid] = {
                "intervals": np.stack([t, t + 1 / rate], axis=1),
                "features": LazyRows(n, dim, seed=k * 2 + nonfinite, nonfinite=nonfinite),
            }
    for role, data in (
        ("labels", labels),
        ("words", words),
        ("acoustic", acoustic),
        ("visual", visual),
    ):
        print(f"writing {paths[role].name} with the SDK's writer ...", file=sys.stderr)
        write_sequence(paths[role], paths[role].stem, data)
    stamp.write_text(json.dumps(wanted))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=3228)
    parser.add_argument("--clips", type=int, default=23259)
    parser.add_argument("--keep-output", action="store_true", help="keep the imported files")
    args = parser.parse_args()

    t0 = time.perf_counter()
    paths = write_sequences(OUT / f"sdk_{args.videos}_{args.clips}", args.videos, args.clips)
    print(f"synthetic sequences ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    sizes = {role: p.stat().st_size / 2**30 for role, p in paths.items()}

    result = OUT / "result"
    shutil.rmtree(result, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "thne.cli",
        "import-features",
        *("--layout", "sdk", "--dataset", "mosei"),
        *(x for role, p in paths.items() for x in (f"--{role}-csd", str(p))),
        *("--manifest", str(result / "manifest.tsv"), "--excluded", str(result / "excluded.tsv")),
        *("--splits", str(result / "splits.json")),
        *("--audio", str(result / "audio.h5"), "--visual", str(result / "visual.h5")),
        "--on-bad-clip",
        "exclude",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"import failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    report = json.loads((result / "splits.json").read_text())
    lines = [line for line in proc.stderr.splitlines() if "non-finite" in line]
    print("input sequences (GiB): " + ", ".join(f"{r} {s:.2f}" for r, s in sizes.items()))
    print(f"clips imported: {report['counts']} (total {report['total']})")
    print(
        f"output (GiB): audio.h5 {(result / 'audio.h5').stat().st_size / 2**30:.2f}, "
        f"visual.h5 {(result / 'visual.h5').stat().st_size / 2**30:.2f}"
    )
    print("\n".join(lines))
    print(f"import wall time: {wall:.1f} s (target <= 300 s)")
    print(f"import CPU time (user + system): {cpu:.1f} s")
    print(f"import peak resident memory: {after.ru_maxrss / 2**20:.2f} GiB (target <= 8 GiB)")
    if not args.keep_output:
        shutil.rmtree(result, ignore_errors=True)


if __name__ == "__main__":
    main()
