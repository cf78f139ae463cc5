"""Importing published feature sets: one writer for every import layout.

A layout's reader (``thne.data.sdk``, ``thne.data.pickles``) yields :class:`ImportedClip`
items, video by video; :func:`write_import` checks them and writes the same files the
extraction stages write (``manifest.tsv``, ``excluded.tsv``, ``splits.json``, ``audio.h5``,
``visual.h5``), so statistics, tokenisation, training and evaluation run unchanged.

Non-finite feature values (the SDK's COVAREP holds NaN and -inf rows) are replaced by 0, as
MMSA's own loader does with its pickles (thuiar/MMSA, ``src/MMSA/data_loader.py``: -inf and
NaN to 0), and counted; the feature file's attributes ``nonfinite_policy``,
``nonfinite_values`` and ``nonfinite_clips`` record what was touched.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import h5py
import numpy as np
from tqdm import tqdm

from thne.data.clips import BAD_CLIP_POLICIES, Clip, IngestError
from thne.data.ingest import normalise_text
from thne.data.manifest import SPLITS, split_counts, write_excluded, write_manifest
from thne.data.splits import NOT_IN_FOLD, write_splits_report
from thne.io import atomic_path, ensure_room

IMPORT_LAYOUTS: tuple[str, ...] = ("sdk", "mmim", "mmsa_pkl")
NONFINITE_POLICY = "replaced by 0"
MODALITIES: tuple[str, ...] = ("audio", "visual")

Frames = tuple[np.ndarray, np.ndarray]  # features [T, D], timestamps [T] (seconds or positions)


@dataclass
class ImportedClip:
    """One candidate clip with its frames, or the reason it cannot be used."""

    clip: Clip
    audio: Frames | None = None
    visual: Frames | None = None
    reason: str | None = None


@dataclass
class FeatureSet:
    """What a layout's files hold, as the feature files and tables describe it."""

    description: str  # e.g. "COVAREP 74 + Facet 4.1 47, word-aligned, MMIM pickles"
    names: dict[str, list[str]]  # modality -> column names
    extractor: dict[str, str]  # modality -> where the columns come from
    config: dict = field(default_factory=dict)  # the source files and how rows were chosen


def _check(item: ImportedClip, widths: dict[str, int]) -> str | None:
    """Why the clip cannot be used, or None."""
    clip = item.clip
    if item.reason:
        return item.reason
    if clip.split not in SPLITS:
        return f"unknown split {clip.split!r} (expected one of {SPLITS})"
    if not math.isfinite(clip.label) or not -3.0 <= clip.label <= 3.0:
        return f"label {clip.label!r} is not a number in [-3, 3]"
    if not normalise_text(clip.text):
        return "no words in the clip"
    for modality in MODALITIES:
        frames = getattr(item, modality)
        if frames is None or len(frames[0]) == 0:
            return f"no {modality} frames in the clip"
        feats, ts = frames
        if feats.ndim != 2 or feats.shape[1] != widths[modality] or len(ts) != len(feats):
            return (
                f"{modality} features have shape {feats.shape} with {len(ts)} timestamps, "
                f"expected [T, {widths[modality]}] and T timestamps"
            )
    return None


def write_import(
    feature_set: FeatureSet,
    items: Iterable[ImportedClip],
    *,
    manifest: str | os.PathLike,
    excluded: str | os.PathLike,
    splits: str | os.PathLike,
    audio: str | os.PathLike,
    visual: str | os.PathLike,
    dataset: str,
    layout: str,
    on_bad_clip: str = "fail",
    total: int | None = None,
) -> tuple[list[Clip], list[tuple[Clip, str]]]:
    """Check each clip, write its frames, then the manifest, exclusions and split report.

    With ``on_bad_clip="fail"`` any unusable clip (other than one outside the standard folds,
    left out by definition) stops the import after every clip was read, so the error lists all
    of them; nothing is written then. With ``"exclude"`` each goes to ``excluded.tsv`` and the
    feature files' ``excluded`` attribute with its reason.
    """
    if on_bad_clip not in BAD_CLIP_POLICIES:
        raise ValueError(f"on_bad_clip must be one of {BAD_CLIP_POLICIES}, got {on_bad_clip!r}")
    widths = {m: len(feature_set.names[m]) for m in MODALITIES}
    kept: list[Clip] = []
    rejected: list[tuple[Clip, str]] = []
    seen: set[str] = set()
    touched = {m: [0, 0] for m in MODALITIES}  # values replaced, clips touched
    with (
        atomic_path(audio) as audio_tmp,
        atomic_path(visual) as visual_tmp,
        h5py.File(audio_tmp, "w") as audio_h5,
        h5py.File(visual_tmp, "w") as visual_h5,
    ):
        files = {"audio": audio_h5, "visual": visual_h5}
        tmps = {"audio": audio_tmp, "visual": visual_tmp}
        for item in tqdm(items, total=total, desc="import", unit="clip", mininterval=2.0):
            clip = item.clip
            if clip.clip_id in seen:
                raise IngestError(f"clip id {clip.clip_id} occurs twice in the {layout} source")
            seen.add(clip.clip_id)
            reason = _check(item, widths)
            if reason is not None:
                rejected.append((clip, reason))
                continue
            for modality in MODALITIES:
                feats, ts = getattr(item, modality)
                feats = np.asarray(feats, np.float32)
                bad = ~np.isfinite(feats)
                n_bad = int(bad.sum())
                if n_bad:
                    feats = np.where(bad, np.float32(0), feats)
                    touched[modality][0] += n_bad
                    touched[modality][1] += 1
                ts = np.asarray(ts, np.float32)
                ensure_room(tmps[modality], feats.nbytes + ts.nbytes)
                group = files[modality].create_group(clip.clip_id)
                group.create_dataset("features", data=feats)
                group.create_dataset("timestamps", data=ts)
            kept.append(replace(clip, text=normalise_text(clip.text)))

        failing = [(c, r) for c, r in rejected if r != NOT_IN_FOLD]
        counts = split_counts(kept)
        per_split = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"clips per split: {per_split}; excluded {len(rejected)}", file=sys.stderr)
        for modality in MODALITIES:
            if touched[modality][0]:
                print(
                    f"{modality}: {touched[modality][0]} non-finite value(s) in "
                    f"{touched[modality][1]} clip(s) {NONFINITE_POLICY}",
                    file=sys.stderr,
                )
        if failing and on_bad_clip == "fail":
            lines = [f"  clip {c.clip_id}: {r}" for c, r in failing[:20]]
            more = f"\n  ... and {len(failing) - 20} more" if len(failing) > 20 else ""
            raise IngestError(
                f"{len(failing)} clip(s) cannot be used (set on_bad_clip: exclude to record "
                "them in excluded.tsv and go on):\n" + "\n".join(lines) + more
            )
        empty = [s for s in SPLITS if counts[s] == 0]
        if empty:
            raise IngestError(f"no usable clips in split(s) {', '.join(empty)}")
        left_out = json.dumps([{"clip_id": c.clip_id, "reason": r} for c, r in failing])
        for modality, h5 in files.items():
            h5.attrs["feature_names"] = np.array(
                feature_set.names[modality], dtype=h5py.string_dtype()
            )
            h5.attrs["extractor"] = feature_set.extractor[modality]
            h5.attrs["feature_set"] = feature_set.description
            h5.attrs["config"] = json.dumps(
                {**feature_set.config, "layout": layout}, sort_keys=True
            )
            h5.attrs["excluded"] = left_out
            h5.attrs["nonfinite_policy"] = NONFINITE_POLICY
            h5.attrs["nonfinite_values"] = touched[modality][0]
            h5.attrs["nonfinite_clips"] = touched[modality][1]
    write_manifest(manifest, kept)
    write_excluded(
        excluded,
        (
            {
                "clip_id": c.clip_id,
                "video_id": c.video_id,
                "split": c.split,
                "media": c.media,
                "reason": r,
            }
            for c, r in rejected
        ),
    )
    write_splits_report(splits, kept, rejected, dataset=dataset, layout=layout)
    return kept, rejected
