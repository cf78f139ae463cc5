"""The clip manifest (``data/{ds}/manifest.tsv``) and the exclusion list beside it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, fields

import pandas as pd

from thne.data.clips import Clip
from thne.io import atomic_path

SPLITS: tuple[str, ...] = ("train", "valid", "test")
EXCLUDED_COLUMNS: tuple[str, ...] = ("clip_id", "video_id", "split", "media", "reason")
MANIFEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Clip))


def write_manifest(path: str | os.PathLike, clips: Iterable[Clip]) -> None:
    frame = pd.DataFrame([asdict(c) for c in clips], columns=list(MANIFEST_COLUMNS))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


def read_manifest(path: str | os.PathLike) -> list[Clip]:
    frame = pd.read_csv(
        path,
        sep="\t",
        dtype={"clip_id": str, "video_id": str, "split": str, "text": str, "media": str},
        keep_default_na=False,
    )
    missing = set(MANIFEST_COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: manifest lacks columns {sorted(missing)}")
    return [
        Clip(
            clip_id=r.clip_id,
            video_id=r.video_id,
            start=float(r.start),
            end=float(r.end),
            split=r.split,
            label=float(r.label),
            text=r.text,
            media=r.media,
        )
        for r in frame.itertuples(index=False)
    ]


def write_excluded(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    frame = pd.DataFrame(list(rows), columns=list(EXCLUDED_COLUMNS))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)


def split_counts(clips: Iterable[Clip]) -> dict[str, int]:
    counts = dict.fromkeys(SPLITS, 0)
    for clip in clips:
        counts[clip.split] += 1
    return counts
