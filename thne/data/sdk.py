"""CMU Multimodal SDK computational sequences (``.csd``) as a dataset source.

A computational sequence is an HDF5 file with one top group holding ``data/<video_id>/features``
[n, k] and ``intervals`` [n, 2] (seconds of the full video), and ``metadata``. Four are read,
through the SDK's own reader (``mmsdk.mmdatasdk.computational_sequence``):

- ``labels``: one row per opinion segment, sentiment in column 0 (MOSI
  ``CMU_MOSI_Opinion_Labels.csd``, MOSEI ``CMU_MOSEI_Labels.csd``). A clip is one label
  interval; its id follows the SDK's aligned naming ``<video_id>[<n>]``, n the interval's
  index in time order within its video, which is also what the MMIM/MISA pickles carry.
- ``words``: one word per row (bytes), ``sp`` marking a pause. A clip's text is its non-pause
  words lying inside its interval (with ``WORD_TOLERANCE``).
- ``acoustic`` and ``visual``: feature rows; a clip's frames are the rows whose intervals
  overlap its interval, unaligned, timestamped from the clip's start.

The SDK's ``align`` rewrites whole sequences and takes hours on MOSEI; here each video's rows
are read once, as one contiguous slice covering its labelled intervals, and cut per clip.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from thne.data.clips import Clip, IngestError
from thne.data.feature_import import FeatureSet, ImportedClip
from thne.data.splits import NOT_IN_FOLD

ROLES: tuple[str, ...] = ("labels", "words", "acoustic", "visual")
# The default sequence of each role: the URLs of the SDK's own tables
# (mmsdk.mmdatasdk.dataset.standard_datasets), MOSEI's labels as the MOSEI ingest reads them.
DEFAULT_SEQUENCES: dict[str, dict[str, str]] = {
    "mosi": {
        "labels": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/labels/CMU_MOSI_Opinion_Labels.csd",
        "words": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/language/CMU_MOSI_TimestampedWords.csd",
        "acoustic": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/acoustic/CMU_MOSI_COVAREP.csd",
        "visual": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSI/visual/CMU_MOSI_VisualFacet_4.1.csd",
    },
    "mosei": {
        "labels": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/labels/CMU_MOSEI_Labels.csd",
        "words": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/language/CMU_MOSEI_TimestampedWords.csd",
        "acoustic": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/acoustic/CMU_MOSEI_COVAREP.csd",
        "visual": "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/visual/CMU_MOSEI_VisualFacet42.csd",
    },
}
SENTIMENT_COLUMN = 0
PAUSE = "sp"
# Word and label times come from one forced alignment, printed with a few digits: 10 ms
# absorbs that rounding and is far shorter than any word, so no neighbouring word slips in.
WORD_TOLERANCE = 0.01


@dataclass
class Sequence:
    """One opened computational sequence: its videos' HDF5 groups and its metadata."""

    path: Path
    role: str
    data: Mapping[str, h5py.Group]
    metadata: dict
    handle: h5py.File

    def close(self) -> None:
        self.handle.close()

    def width(self) -> int:
        first = next(iter(self.data.values()))
        return int(first["features"].shape[1])

    def feature_names(self, prefix: str) -> list[str]:
        """The ``dimension names`` metadata where it has one name per column, else
        ``<prefix>_<i>``."""
        width = self.width()
        names = self.metadata.get("dimension names")
        if isinstance(names, list) and len(names) == width:
            return [str(n) for n in names]
        return [f"{prefix}_{i}" for i in range(width)]

    def read(self, video_id: str) -> tuple[np.ndarray, h5py.Dataset]:
        """The video's intervals [n, 2] (float64) and its features dataset (read lazily)."""
        group = self.data[video_id]
        return np.asarray(group["intervals"][()], dtype=np.float64), group["features"]


def _metadata_value(value) -> object:
    """Metadata entries are strings, often JSON (quoted names, lists of dimension names)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        return json.loads(text)
    except ValueError:
        return text


def open_sequence(path: str | os.PathLike, role: str) -> Sequence:
    """Open the computational sequence at ``path`` for ``role`` (labels, words, acoustic,
    visual) and check that it holds that kind of data; the error names the file otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"{path}: the {role} sequence does not exist")
    if ".csd" not in path.name:
        # The SDK takes a name without .csd for a new, blank sequence, not a file to read.
        raise IngestError(f"{path}: the SDK reads only files whose name contains .csd")
    # Imported here: the SDK is needed only for this layout, and importing it is not free.
    from mmsdk.mmdatasdk import computational_sequence

    try:
        # The SDK prints progress on stdout; keep stdout for the program's own output.
        with contextlib.redirect_stdout(sys.stderr):
            sequence = computational_sequence(str(path))
    except (
        RuntimeError,
        KeyError,
        OSError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:
        raise IngestError(
            f"{path}: not a computational sequence (an HDF5 file with one top group holding "
            f"data/ and metadata/): {exc}"
        ) from exc
    handle = sequence.h5handle
    result = Sequence(
        path=path,
        role=role,
        data=sequence.data,
        metadata={k: _metadata_value(v) for k, v in sequence.metadata.items()},
        handle=handle,
    )
    try:
        _check_kind(result)
    except Exception:
        handle.close()
        raise
    return result


def _check_kind(seq: Sequence) -> None:
    tops = list(seq.handle.keys())
    if len(tops) != 1:
        # The SDK reads the first top group only; a second one would be ignored silently.
        raise IngestError(
            f"{seq.path}: expected one top group in the computational sequence, found "
            f"{len(tops)} ({', '.join(tops)})"
        )
    if not seq.data:
        raise IngestError(f"{seq.path}: the {seq.role} sequence holds no videos")
    for vid, group in seq.data.items():
        features, intervals = group["features"], group["intervals"]
        if features.ndim != 2 or intervals.shape != (features.shape[0], 2):
            raise IngestError(
                f"{seq.path}: video {vid}: features {features.shape} and intervals "
                f"{intervals.shape} are not [n, k] and [n, 2]"
            )
        text = features.dtype.kind in "SOU"
        if seq.role == "words" and not text:
            raise IngestError(
                f"{seq.path}: not a words sequence: video {vid} holds numbers "
                f"({features.dtype}), not words"
            )
        if seq.role != "words" and (text or features.dtype.kind not in "fiu"):
            raise IngestError(
                f"{seq.path}: not a {seq.role} sequence: video {vid} holds "
                f"{'words' if text else features.dtype}, not numbers"
            )
    if seq.role in ("acoustic", "visual") and seq.width() < 2:
        raise IngestError(
            f"{seq.path}: not a {seq.role} sequence: one column per row (a labels sequence?)"
        )


def clip_id(video_id: str, n: int) -> str:
    """The SDK's aligned name of a video's n-th label interval."""
    return f"{video_id}[{n}]"


def label_clips(labels: Sequence, folds: Mapping[str, str]) -> list[tuple[Clip, str | None]]:
    """Every label interval as a clip (text still empty), with the reason to leave it out."""
    out: list[tuple[Clip, str | None]] = []
    for vid in sorted(labels.data):
        intervals, features = labels.read(vid)
        values = np.asarray(features[()], dtype=np.float64)[:, SENTIMENT_COLUMN]
        order = np.lexsort((intervals[:, 1], intervals[:, 0]))  # by start, then end
        split = folds.get(vid)
        for n, row in enumerate(order):
            start, end = (float(t) for t in intervals[row])
            clip = Clip(
                clip_id=clip_id(vid, n),
                video_id=vid,
                start=round(start, 4),
                end=round(end, 4),
                split=split or "",
                label=float(values[row]),
                text="",
                media="",
            )
            reason = None
            if split is None:
                reason = NOT_IN_FOLD
            elif not end > start:
                reason = f"label interval [{start}, {end}] is empty"
            out.append((clip, reason))
    return out


def words_in(words: np.ndarray, intervals: np.ndarray, start: float, end: float) -> str:
    """The non-pause words whose interval lies inside [start, end], in time order."""
    inside = (intervals[:, 0] >= start - WORD_TOLERANCE) & (intervals[:, 1] <= end + WORD_TOLERANCE)
    rows = np.flatnonzero(inside)
    rows = rows[np.argsort(intervals[rows, 0], kind="stable")]
    tokens = (_decode(w) for w in words[rows])
    return " ".join(t for t in tokens if t and t != PAUSE)


def _decode(word) -> str:
    return (word.decode("utf-8", "replace") if isinstance(word, bytes) else str(word)).strip()


def overlapping(intervals: np.ndarray, start: float, end: float) -> np.ndarray:
    """Rows whose interval overlaps [start, end), in time order; a zero-length row counts
    when its instant lies inside."""
    t0, t1 = intervals[:, 0], intervals[:, 1]
    hit = ((t0 < end) & (t1 > start)) | ((t0 == t1) & (t0 >= start) & (t0 < end))
    rows = np.flatnonzero(hit)
    return rows[np.argsort(t0[rows], kind="stable")]


def _frames(seq: Sequence, clips: list[Clip]) -> list[tuple[np.ndarray, np.ndarray] | str]:
    """Each clip's rows of ``seq`` with timestamps from the clip's start, or why there are none.

    The video's features are read once, as the one slice spanning all its clips' rows.
    """
    if clips[0].video_id not in seq.data:
        return [f"video {clips[0].video_id} is not in the {seq.role} sequence {seq.path}"] * len(
            clips
        )
    intervals, features = seq.read(clips[0].video_id)
    rows = [overlapping(intervals, c.start, c.end) for c in clips]
    nonempty = [r for r in rows if len(r)]
    if nonempty:
        lo = int(min(r.min() for r in nonempty))
        hi = int(max(r.max() for r in nonempty)) + 1
        block = np.asarray(features[lo:hi], dtype=np.float32)
    out: list[tuple[np.ndarray, np.ndarray] | str] = []
    for clip, r in zip(clips, rows, strict=True):
        if not len(r):
            out.append(
                f"no {seq.role} rows in the interval [{clip.start}, {clip.end}] of {seq.path.name}"
            )
            continue
        ts = np.maximum(intervals[r, 0], clip.start) - clip.start
        out.append((block[r - lo], ts.astype(np.float32)))
    return out


def feature_set(acoustic: Sequence, visual: Sequence) -> FeatureSet:
    def label(seq: Sequence) -> str:
        return f"{seq.path.name.split('.csd')[0]} {seq.width()}"

    return FeatureSet(
        description=f"{label(acoustic)} + {label(visual)}, unaligned, CMU SDK sequences",
        names={
            "audio": acoustic.feature_names("acoustic"),
            "visual": visual.feature_names("visual"),
        },
        extractor={
            "audio": f"CMU SDK sequence {acoustic.path.name}",
            "visual": f"CMU SDK sequence {visual.path.name}",
        },
        config={
            "rows": "overlapping the clip's label interval",
            "word_tolerance": WORD_TOLERANCE,
            "sequences": {s.role: s.path.name for s in (acoustic, visual)},
        },
    )


def read_sdk(
    labels: Sequence,
    words: Sequence,
    acoustic: Sequence,
    visual: Sequence,
    folds: Mapping[str, str],
) -> tuple[FeatureSet, int, Iterator[ImportedClip]]:
    """The feature set, the number of candidate clips, and the clips with their frames, video
    by video (so only one video's rows are in memory at a time)."""
    candidates = label_clips(labels, folds)

    def items() -> Iterator[ImportedClip]:
        by_video: dict[str, list[tuple[Clip, str | None]]] = {}
        for clip, reason in candidates:
            by_video.setdefault(clip.video_id, []).append((clip, reason))
        for vid, entries in by_video.items():
            usable = [c for c, r in entries if r is None]
            for clip, reason in entries:
                if reason is not None:
                    yield ImportedClip(clip, reason=reason)
            if not usable:
                continue
            if vid not in words.data:
                texts = None
            else:
                iv, feats = words.read(vid)
                tokens = feats[()][:, 0]
                texts = [words_in(tokens, iv, c.start, c.end) for c in usable]
            audio, vis = _frames(acoustic, usable), _frames(visual, usable)
            for i, clip in enumerate(usable):
                if texts is None:
                    yield ImportedClip(
                        clip, reason=f"video {vid} is not in the words sequence {words.path}"
                    )
                    continue
                clip = replace(clip, text=texts[i])
                reason = next((f for f in (audio[i], vis[i]) if isinstance(f, str)), None)
                if reason is not None:
                    yield ImportedClip(clip, reason=reason)
                else:
                    yield ImportedClip(clip, audio=audio[i], visual=vis[i])

    return feature_set(acoustic, visual), len(candidates), items()


def write_sequence(
    path: str | os.PathLike,
    root: str,
    data: Mapping[str, Mapping[str, np.ndarray]],
    *,
    dimension_names: list[str] | None = None,
    description: str = "",
) -> None:
    """Write ``data`` ({video_id: {"intervals": [n, 2], "features": [n, k]}}) as a
    computational sequence with the SDK's own writer (``computational_sequence.deploy``).

    The writer needs only ``.shape`` and array conversion of each entry, so entries may be
    objects that make their rows when written (the benchmark's synthetic MOSEI-size data).
    """
    from mmsdk.mmdatasdk import computational_sequence
    from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

    metadata = {key: "" for key in featuresetMetadataTemplate}
    metadata.update(
        {
            "root name": root,
            "computational sequence description": description or root,
            "dimension names": json.dumps(dimension_names or []),
            "alignment compatible": "true",
        }
    )
    sequence = computational_sequence(root)
    with contextlib.redirect_stdout(sys.stderr):
        sequence.setData(dict(data), root)
        sequence.setMetadata(metadata, root)
        sequence.deploy(str(path))
