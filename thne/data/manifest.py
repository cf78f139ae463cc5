"""The clip manifest (``data/{ds}/manifest.tsv``) and the exclusion list beside it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import pandas as pd

from thne.io import atomic_path

SPLITS: tuple[str, ...] = ("train", "valid", "test")
BAD_CLIP_POLICIES: tuple[str, ...] = ("fail", "exclude")
EXCLUDED_COLUMNS: tuple[str, ...] = ("clip_id", "video_id", "split", "media", "reason")


@dataclass(frozen=True)
class Clip:
    clip_id: str
    video_id: str
    start: float
    end: float
    split: str
    label: float
    text: str
    media: str


MANIFEST_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Clip))


def clip_problem(clip: Clip, reason: str) -> str:
    """``clip <id> (<media>): <reason>``, naming the media once: most reasons already do."""
    where = "" if clip.media in reason else f" ({clip.media})"
    return f"clip {clip.clip_id}{where}: {reason}"


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
