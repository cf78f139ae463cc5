"""What ``thne predict`` scores: one media file with its transcript, a folder of media files
each with a ``.txt`` transcript beside it, or a TSV with ``media`` and ``text`` columns (and
optional ``start``, ``end`` and ``clip``).

Clips are checked as ingest checks a dataset's (:func:`thne.data.ingest.check_media`): the
text is normalised, the end filled in from the media, and media that cannot cover the clip is
an error or, with ``on_bad_clip="exclude"``, a recorded exclusion.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from thne.data.clips import BAD_CLIP_POLICIES, Clip, Rejected, clip_problem
from thne.data.ingest import check_media
from thne.data.manifest import MANIFEST_COLUMNS
from thne.errors import InputError
from thne.io import atomic_path

# The split and label of a clip to be scored: it has neither.
PREDICT_SPLIT = "predict"
MEDIA_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".wav", ".mp3", ".m4a")
TSV_COLUMNS = ("media", "text")


class PredictInputError(InputError):
    """What to score cannot be read; the message names the file and what is wrong."""


def _clip(clip_id: str, media: Path, text: str, start: float = 0.0, end: float = math.nan) -> Clip:
    return Clip(
        clip_id=clip_id,
        video_id=media.stem,
        start=float(start),
        end=float(end),
        split=PREDICT_SPLIT,
        label=math.nan,
        text=text,
        media=str(media),
    )


def _safe_id(name: str) -> str:
    """A clip id usable as an HDF5 group name and a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "clip"


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        n = seen.get(i, 0)
        seen[i] = n + 1
        out.append(i if n == 0 else f"{i}_{n}")
    return out


def read_folder(folder: Path) -> list[Clip]:
    """Every media file under ``folder``, with the transcript in the ``.txt`` beside it."""
    media = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
    )
    if not media:
        raise PredictInputError(f"{folder}: no media files ({', '.join(MEDIA_SUFFIXES)}) in it")
    missing = [p for p in media if not p.with_suffix(".txt").is_file()]
    if missing:
        names = ", ".join(str(p.with_suffix(".txt")) for p in missing[:5])
        raise PredictInputError(
            f"{folder}: {len(missing)} media file(s) have no transcript beside them ({names})"
        )
    ids = _unique([_safe_id(str(p.relative_to(folder).with_suffix(""))) for p in media])
    return [
        _clip(i, p, p.with_suffix(".txt").read_text(encoding="utf-8"))
        for i, p in zip(ids, media, strict=True)
    ]


def read_table(path: Path) -> list[Clip]:
    """Rows of a TSV with ``media`` and ``text`` and optionally ``start``, ``end`` (seconds) and
    ``clip`` (an id). Relative media paths are relative to the TSV's folder."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = set(TSV_COLUMNS) - set(frame.columns)
    if missing:
        raise PredictInputError(
            f"{path}: needs columns {', '.join(TSV_COLUMNS)}; missing {', '.join(sorted(missing))}"
        )
    clips, ids = [], []
    for n, row in enumerate(frame.to_dict("records"), start=2):
        media = Path(row["media"])
        media = media if media.is_absolute() else path.parent / media
        try:
            start = float(row["start"]) if row.get("start", "") != "" else 0.0
            end = float(row["end"]) if row.get("end", "") != "" else math.nan
        except ValueError as exc:
            raise PredictInputError(
                f"{path}, line {n}: start/end are not numbers ({exc})"
            ) from None
        ids.append(
            _safe_id(row.get("clip") or (media.stem if start == 0 else f"{media.stem}_{start:g}"))
        )
        clips.append(_clip("", media, row["text"], start, end))
    return [Clip(**{**c.__dict__, "clip_id": i}) for c, i in zip(clips, _unique(ids), strict=True)]


def read_inputs(inputs: Sequence[str | os.PathLike], text: str | None = None) -> list[Clip]:
    """The clips named by ``inputs`` (media files, folders, TSVs), not yet checked. ``text`` is
    the transcript of a single media file."""
    clips: list[Clip] = []
    for item in map(Path, inputs):
        if item.is_dir():
            clips += read_folder(item)
        elif item.suffix.lower() in (".tsv", ".txt") and item.is_file():
            clips += read_table(item)
        elif item.suffix.lower() in MEDIA_SUFFIXES:
            if text is None:
                if not item.with_suffix(".txt").is_file():
                    raise PredictInputError(
                        f"{item}: give its transcript with --text, or in {item.with_suffix('.txt')}"
                    )
                transcript = item.with_suffix(".txt").read_text(encoding="utf-8")
            else:
                transcript = text
            clips.append(_clip(_safe_id(item.stem), item, transcript))
        elif not item.exists():
            raise PredictInputError(f"{item}: does not exist")
        else:
            raise PredictInputError(
                f"{item}: not a media file ({', '.join(MEDIA_SUFFIXES)}), a folder or a .tsv"
            )
    if text is not None and len(clips) != 1:
        raise PredictInputError("--text is the transcript of a single media file")
    ids = _unique([c.clip_id for c in clips])
    return [Clip(**{**c.__dict__, "clip_id": i}) for c, i in zip(clips, ids, strict=True)]


def check_inputs(
    clips: Sequence[Clip], on_bad_clip: str = "fail"
) -> tuple[list[Clip], list[Rejected]]:
    """The clips whose transcript and media are usable, and those rejected with the reason.
    With ``on_bad_clip="fail"`` any rejected clip is an error that lists them all."""
    if on_bad_clip not in BAD_CLIP_POLICIES:
        raise ValueError(f"on_bad_clip must be one of {BAD_CLIP_POLICIES}, got {on_bad_clip!r}")
    checked = [check_media(c) for c in clips]
    kept = [c for c in checked if isinstance(c, Clip)]
    rejected = [c for c in checked if isinstance(c, Rejected)]
    if rejected and on_bad_clip == "fail":
        lines = "\n".join(f"  {clip_problem(r.clip, r.reason)}" for r in rejected)
        raise PredictInputError(
            f"{len(rejected)} clip(s) cannot be scored (--on-bad-clip exclude records them and "
            f"goes on):\n{lines}"
        )
    return kept, rejected


def write_clips(path: str | os.PathLike, clips: Sequence[Clip]) -> None:
    """The clips as a manifest (``read_manifest`` reads it; the label column is ``nan``), so
    that the feature stages and ``thne predict --manifest`` can take them."""
    frame = pd.DataFrame([c.__dict__ for c in clips], columns=list(MANIFEST_COLUMNS))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="nan")
