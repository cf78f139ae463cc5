"""CMU-MOSI in the layout of CMU's raw archive (``CMU_MOSI.zip``).

Format facts relied on:
- ``Raw/Labels/OpinionLevelSentiment.csv``: no header, rows ``start,end,video_id,segment_no,label``
  (2199 rows; segments numbered from 1; one row, ``2WGyTLYerpo`` segment 44, has start == end).
- ``Raw/Transcript/Segmented/<vid>.annotprocessed``: lines ``<seg>_DELIM_<TEXT>``, upper case.
- ``Raw/Video/Segmented/<vid>_<seg>.mp4``: one file per labelled segment, the media published
  MOSI work used; ``Raw/Video/Full/<vid>.mp4``: the whole video.
Clip ids are ``<vid>_<seg>``; splits are the SDK's standard folds.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from thne.data.clips import Clip, IngestError, Rejected
from thne.data.splits import NOT_IN_FOLD, standard_folds

LABELS = Path("Labels") / "OpinionLevelSentiment.csv"


def mosi_root(raw_dir: str | os.PathLike) -> Path:
    """The archive's ``Raw/`` folder; ``raw_dir`` may name it or any folder above it (up to
    two levels, as archives often wrap their content in a top folder)."""
    base = Path(raw_dir)
    candidates = [base, base / "Raw", *sorted(base.glob("*/Raw")), *sorted(base.glob("*/*/Raw"))]
    for raw in candidates:
        if (raw / LABELS).is_file():
            return raw
    raise IngestError(
        f"{raw_dir}: no Raw/{LABELS.as_posix()} here (a CMU-MOSI archive copy holds it)"
    )


def read_transcripts(folder: Path) -> dict[tuple[str, str], str]:
    """(video_id, segment) -> text of every ``<vid>.annotprocessed`` file in ``folder``."""
    texts: dict[tuple[str, str], str] = {}
    for path in sorted(folder.glob("*.annotprocessed")):
        for n, line in enumerate(
            path.read_text(encoding="utf-8", errors="replace").splitlines(), 1
        ):
            if not line.strip():
                continue
            seg, sep, text = line.partition("_DELIM_")
            if not sep or not seg.strip().isdigit():
                raise IngestError(
                    f"{path}:{n}: expected '<segment>_DELIM_<text>', got {line[:60]!r}"
                )
            texts[(path.stem, seg.strip())] = text
    return texts


def read_cmu_mosi(raw_dir: str | os.PathLike) -> tuple[list[Clip], list[Rejected]]:
    """Candidate clips of a CMU-MOSI archive copy, and the label/transcript mismatches found."""
    raw = mosi_root(raw_dir)
    transcripts = read_transcripts(raw / "Transcript" / "Segmented")
    folds = standard_folds("mosi")
    clips: list[Clip] = []
    rejected: list[Rejected] = []
    labelled: set[tuple[str, str]] = set()
    with open(raw / LABELS, newline="") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 5:
                raise IngestError(
                    f"{raw / LABELS}:{n}: expected start,end,video_id,segment_no,label"
                )
            start, end, vid, seg, label = (v.strip() for v in row)
            try:
                t_start, t_end, value = float(start), float(end), float(label)
            except ValueError as exc:
                raise IngestError(f"{raw / LABELS}:{n}: {exc} (row {row})") from exc
            labelled.add((vid, seg))
            segmented = raw / "Video" / "Segmented" / f"{vid}_{seg}.mp4"
            if segmented.is_file():
                media, t0, t1 = segmented, 0.0, math.nan
            else:  # only where the archive lacks the clip file: cut it from the full video
                media, t0, t1 = raw / "Video" / "Full" / f"{vid}.mp4", t_start, t_end
            clip = Clip(
                clip_id=f"{vid}_{seg}",
                video_id=vid,
                start=t0,
                end=t1,
                split=folds.get(vid, ""),
                label=value,
                text=transcripts.get((vid, seg), ""),
                media=str(media),
            )
            if vid not in folds:
                rejected.append(Rejected(clip, NOT_IN_FOLD))
            elif (vid, seg) not in transcripts:
                rejected.append(Rejected(clip, "label row without a transcript line"))
            else:
                clips.append(clip)
    for vid, seg in sorted(set(transcripts) - labelled):
        orphan = Clip(
            f"{vid}_{seg}",
            vid,
            0.0,
            math.nan,
            folds.get(vid, ""),
            math.nan,
            transcripts[(vid, seg)],
            "",
        )
        reason = "transcript line without a label row" if vid in folds else NOT_IN_FOLD
        rejected.append(Rejected(orphan, reason))
    return clips, rejected
