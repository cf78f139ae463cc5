"""Published-format feature sets for tests: SDK sequences written by the SDK's own writer from
real CMU-MOSI label intervals, and the pickles of MMIM/MISA and MMSA."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np

from conftest import need
from thne.data.sdk import write_sequence
from thne.data.splits import standard_folds

ACOUSTIC_RATE, VISUAL_RATE = 100.0, 30.0
ACOUSTIC_DIM, VISUAL_DIM = 74, 35


def mosi_segments(realdata: Path) -> dict[str, list[tuple[float, float, str, float]]]:
    """video_id -> [(start, end, segment, label)] of OpinionLevelSentiment.csv, in time order."""
    rows: dict[str, list] = {}
    with open(need(realdata / "mosi" / "OpinionLevelSentiment.csv"), newline="") as f:
        for start, end, vid, seg, label in csv.reader(f):
            rows.setdefault(vid, []).append((float(start), float(end), seg, float(label)))
    return {vid: sorted(r, key=lambda x: (x[0], x[1])) for vid, r in rows.items()}


def pick_videos(segments: dict, per_split: dict[str, int]) -> list[str]:
    folds = standard_folds("mosi")
    picked = []
    for split, n in per_split.items():
        picked += sorted(v for v in segments if folds.get(v) == split)[:n]
    return picked


def frames(duration: float, rate: float, dim: int, seed: int) -> dict[str, np.ndarray]:
    n = int(duration * rate)
    start = np.arange(n) / rate
    rng = np.random.default_rng(seed)
    return {
        "intervals": np.stack([start, start + 1 / rate], axis=1),
        "features": rng.normal(size=(n, dim)).astype(np.float32),
    }


def write_sdk_set(
    dest: Path,
    realdata: Path,
    *,
    per_split: dict[str, int] | None = None,
    clips_per_video: int = 8,
    labels_override: dict[tuple[str, int], float] | None = None,
) -> dict[str, Path]:
    """Labels of the first ``clips_per_video`` MOSI segments of a few videos, the real words
    sequence, and synthetic COVAREP-like (74 at 100 Hz) and Facet-like (35 at 30 Hz) sequences
    covering each video; all but the words written with the SDK's writer."""
    dest.mkdir(parents=True, exist_ok=True)
    segments = mosi_segments(realdata)
    videos = pick_videos(segments, per_split or {"train": 2, "valid": 1, "test": 1})
    labels, acoustic, visual = {}, {}, {}
    for i, vid in enumerate(videos):
        rows = [r for r in segments[vid] if r[1] > r[0]][:clips_per_video]
        values = [
            (labels_override or {}).get((vid, n), label) for n, (*_, label) in enumerate(rows)
        ]
        labels[vid] = {
            "intervals": np.array([[s, e] for s, e, *_ in rows]),
            "features": np.array(values, np.float32)[:, None],
        }
        duration = rows[-1][1] + 1.0
        acoustic[vid] = frames(duration, ACOUSTIC_RATE, ACOUSTIC_DIM, seed=i)
        visual[vid] = frames(duration, VISUAL_RATE, VISUAL_DIM, seed=100 + i)
    paths = {
        "labels": dest / "CMU_MOSI_Opinion_Labels.csd",
        "words": need(realdata / "mosi" / "sdk" / "CMU_MOSI_ModifiedTimestampedWords.csd"),
        "acoustic": dest / "CMU_MOSI_COVAREP.csd",
        "visual": dest / "CMU_MOSI_Visual_Facet_42.csd",
    }
    write_sequence(paths["labels"], "Opinion Segment Labels", labels, dimension_names=["sentiment"])
    write_sequence(
        paths["acoustic"],
        "COVAREP",
        acoustic,
        dimension_names=[f"covarep_{i}" for i in range(ACOUSTIC_DIM)],
    )
    write_sequence(paths["visual"], "FACET_4.2", visual)
    return paths


def mmim_entries(n: int, seed: int, prefix: str) -> list:
    """MMIM/MISA pickle entries: ((word_ids, visual, acoustic, words), [[label]], id)."""
    rng = np.random.default_rng(seed)
    vocabulary = "this movie was really good bad boring and the acting sp".split()
    entries = []
    for i in range(n):
        length = int(rng.integers(4, 12))
        words = list(rng.choice(vocabulary, size=length))
        entries.append(
            (
                (
                    np.arange(length),
                    rng.normal(size=(length, 47)).astype(np.float32),
                    rng.normal(size=(length, 74)).astype(np.float32),
                    np.array(words),
                ),
                np.array([[rng.uniform(-3, 3)]], np.float32),
                f"{prefix}{i // 4}[{i % 4}]",
            )
        )
    return entries


def write_mmim(folder: Path, sizes: dict[str, int] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, n) in enumerate((sizes or {"train": 16, "dev": 8, "test": 8}).items()):
        with open(folder / f"{name}.pkl", "wb") as f:
            pickle.dump(mmim_entries(n, seed=k, prefix=f"{name}Vid"), f)
    return folder


def mmsa_split(n: int, seed: int, prefix: str, aligned: bool) -> dict:
    rng = np.random.default_rng(seed)
    la, lv = (50, 50) if aligned else (375, 500)
    part = {
        "id": np.array([f"{prefix}{i // 4}$_${i % 4}" for i in range(n)], dtype=object),
        "raw_text": np.array([f"clip {i} was rather good" for i in range(n)], dtype=object),
        "audio": rng.normal(size=(n, la, 5)).astype(np.float32),
        "vision": rng.normal(size=(n, lv, 20)).astype(np.float32),
        "regression_labels": rng.uniform(-3, 3, size=n).astype(np.float32),
        "classification_labels": np.zeros(n, np.float32),
    }
    if aligned:
        mask = np.zeros((n, la))
        lengths = rng.integers(5, la, size=n)
        for i, length in enumerate(lengths):
            mask[i, :length] = 1
        part["text_bert"] = np.stack([np.zeros((n, la)), mask, np.zeros((n, la))], axis=1)
    else:
        part["audio_lengths"] = rng.integers(20, la, size=n)
        part["vision_lengths"] = rng.integers(20, lv, size=n)
    return part


def write_mmsa_pkl(path: Path, aligned: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        split: mmsa_split(n, seed=k, prefix=f"{split}Vid", aligned=aligned)
        for k, (split, n) in enumerate({"train": 16, "valid": 8, "test": 8}.items())
    }
    with open(path, "wb") as f:
        pickle.dump(data, f)
    return path
