"""Ingest: from a dataset's own files to the clip manifest.

Each layout has a reader that yields candidate clips; one shared step checks them (label range,
split, transcript, media readable), applies the ``on_bad_clip`` policy and writes
``manifest.tsv`` and ``excluded.tsv``.
"""

from __future__ import annotations

import functools
import math
import os
import re
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from thne.data.clips import BAD_CLIP_POLICIES, Clip, IngestError, Rejected, clip_problem
from thne.data.manifest import SPLITS, split_counts, write_excluded, write_manifest
from thne.data.splits import NOT_IN_FOLD
from thne.media import STREAM_END_SLACK_S, MediaError, probe

LAYOUTS: tuple[str, ...] = ("mmsa", "cmu")
_SPLIT_ALIASES = {
    "train": "train",
    "valid": "valid",
    "val": "valid",
    "dev": "valid",
    "test": "test",
}


def normalise_text(text: str) -> str:
    """Lower case with whitespace collapsed: the one text normalisation of every layout."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def mmsa_root(raw_dir: str | os.PathLike) -> Path:
    """The folder holding ``label.csv`` and ``Raw/``. ``raw_dir`` may name it, ``Raw/`` itself,
    or a folder up to two levels above it (an unpacked archive's wrapper folders)."""
    base = Path(raw_dir)
    if base.name == "Raw" and (base.parent / "label.csv").is_file():
        return base.parent
    for root in [base, *sorted(base.glob("*")), *sorted(base.glob("*/*"))]:
        if (root / "label.csv").is_file():
            return root
    raise IngestError(f"{raw_dir}: no label.csv here (an MMSA copy holds label.csv and Raw/)")


def read_mmsa(raw_dir: str | os.PathLike) -> tuple[list[Clip], list[Rejected]]:
    """Clips of an MMSA copy: ``label.csv`` plus ``Raw/<video_id>/<clip_id>.mp4``, and the rows
    refused for a label that is not a number (named as written in the file).

    Media is the clip's own file, so start is 0 and end its duration (filled in by the checks).
    Some copies carry a single ``id`` column (``<video_id>_<clip_id>``) instead of the two.
    """
    root = mmsa_root(raw_dir)
    label_csv = root / "label.csv"
    frame = pd.read_csv(label_csv, dtype=str, keep_default_na=False)
    frame.columns = [c.strip() for c in frame.columns]
    if {"video_id", "clip_id"} <= set(frame.columns):
        video_ids, seg_ids = frame["video_id"].str.strip(), frame["clip_id"].str.strip()
    elif "id" in frame.columns:
        parts = frame["id"].str.strip().str.rsplit("_", n=1)
        video_ids, seg_ids = parts.str[0], parts.str[1]
    else:
        raise IngestError(f"{label_csv}: needs columns video_id and clip_id (or id)")
    missing = {"text", "label", "mode"} - set(frame.columns)
    if missing:
        raise IngestError(f"{label_csv}: missing columns {sorted(missing)}")
    clips, refused = [], []
    for vid, seg, text, label, mode in zip(
        video_ids, seg_ids, frame["text"], frame["label"], frame["mode"], strict=True
    ):
        try:
            value = float(label)
        except ValueError:
            value = math.nan
        clip = Clip(
            clip_id=f"{vid}_{seg}",
            video_id=vid,
            start=0.0,
            end=math.nan,
            split=_SPLIT_ALIASES.get(mode.strip().lower(), mode.strip().lower()),
            label=value,
            text=text,
            media=str(root / "Raw" / vid / f"{seg}.mp4"),
        )
        if math.isnan(value):
            refused.append(Rejected(clip, f"label {label.strip()!r} is not a number"))
        else:
            clips.append(clip)
    return clips, refused


def check_clip(clip: Clip, probe_media=probe) -> Clip | Rejected:
    """Validate one clip and fill in its end time from the media when it is unknown."""
    split = _SPLIT_ALIASES.get(clip.split)
    if split is None:
        return Rejected(clip, f"unknown split {clip.split!r} (expected one of {SPLITS})")
    if not math.isfinite(clip.label) or not -3.0 <= clip.label <= 3.0:
        return Rejected(clip, f"label {clip.label!r} is not a number in [-3, 3]")
    checked = check_media(clip, probe_media)
    return checked if isinstance(checked, Rejected) else replace(checked, split=split)


def check_media(clip: Clip, probe_media=probe) -> Clip | Rejected:
    """Check a clip's transcript and media, whatever its split and label: the text is
    normalised, the end filled in from the media when unknown, and a clip the media cannot
    cover (unreadable, truncated, an empty interval) is rejected with the reason."""
    text = normalise_text(clip.text)
    if not text:
        return Rejected(clip, "empty transcript")
    try:
        info = probe_media(clip.media)
    except MediaError as exc:
        return Rejected(clip, str(exc))
    end = info.duration if math.isnan(clip.end) else clip.end
    if not 0.0 <= clip.start < end:
        return Rejected(clip, f"interval [{clip.start}, {end}] is empty or negative")
    if end > info.duration + 0.5:
        return Rejected(
            clip, f"interval ends at {end:.2f}s, after the media's end ({info.duration:.2f}s)"
        )
    if end > info.covered + STREAM_END_SLACK_S:
        held = max(0.0, info.covered - clip.start)
        return Rejected(
            clip,
            f"{clip.media}: holds {held:.2f} s of the clip's {end - clip.start:.2f} s (its "
            f"{info.short_stream} stream ends at {info.covered:.2f} s of the "
            f"{info.duration:.2f} s its container declares): the file is truncated",
        )
    return replace(clip, text=text, end=round(end, 4))


def ingest(
    clips: Iterable[Clip],
    manifest_path: str | os.PathLike,
    excluded_path: str | os.PathLike,
    *,
    on_bad_clip: str = "fail",
    threads: int = 1,
    rejected: Iterable[Rejected] = (),
) -> tuple[list[Clip], list[Rejected]]:
    """Check ``clips``, then write the manifest and the exclusion list.

    ``rejected`` carries what the layout's reader already refused (label/transcript
    mismatches, clips outside the standard folds). With ``on_bad_clip="fail"`` any rejected
    clip stops the run (after all clips were checked, so the error lists every problem), except
    clips outside the standard folds, which are left out by definition; with ``"exclude"``
    rejected clips go to ``excluded.tsv`` with their reason. The counts per split are printed
    either way.
    """
    if on_bad_clip not in BAD_CLIP_POLICIES:
        raise ValueError(f"on_bad_clip must be one of {BAD_CLIP_POLICIES}, got {on_bad_clip!r}")
    clips = list(clips)
    seen: set[str] = set()
    dupes = [c.clip_id for c in clips if c.clip_id in seen or seen.add(c.clip_id)]
    if dupes:
        raise IngestError(f"duplicate clip ids: {', '.join(sorted(set(dupes))[:10])}")
    # Clips cut from one full video share its file: probe each file once per run.
    probe_once = functools.lru_cache(maxsize=None)(probe)
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        checked = list(
            tqdm(
                pool.map(functools.partial(check_clip, probe_media=probe_once), clips),
                total=len(clips),
                desc="ingest",
                unit="clip",
                mininterval=2.0,
            )
        )
    kept = [c for c in checked if isinstance(c, Clip)]
    rejected = list(rejected) + [c for c in checked if isinstance(c, Rejected)]
    failing = [r for r in rejected if r.reason != NOT_IN_FOLD]

    counts = split_counts(kept)
    per_split = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"clips per split: {per_split}; excluded {len(rejected)}", file=sys.stderr)
    # Not errors, but a user should know: their acoustic features are zeros, audio_present 0.
    silent = sum(not probe_once(c.media).has_audio for c in kept)
    print(f"clips without an audio track: {silent}", file=sys.stderr)
    if failing and on_bad_clip == "fail":
        lines = [f"  {clip_problem(r.clip, r.reason)}" for r in failing[:20]]
        more = f"\n  ... and {len(failing) - 20} more" if len(failing) > 20 else ""
        raise IngestError(
            f"{len(failing)} clip(s) cannot be used (set on_bad_clip: exclude to record them in "
            f"excluded.tsv and go on):\n" + "\n".join(lines) + more
        )
    empty = [s for s in SPLITS if counts[s] == 0]
    if empty:
        raise IngestError(f"no usable clips in split(s) {', '.join(empty)}")
    write_manifest(manifest_path, kept)
    write_excluded(
        excluded_path,
        (
            {
                "clip_id": r.clip.clip_id,
                "video_id": r.clip.video_id,
                "split": r.clip.split,
                "media": r.clip.media,
                "reason": r.reason,
            }
            for r in rejected
        ),
    )
    return kept, rejected


def annotation_files(layout: str, raw_dir: str | os.PathLike, *, dataset: str = "") -> list[str]:
    """The label and transcript files of a dataset copy: what ingest reads besides media."""
    if layout == "mmsa":
        return [str(mmsa_root(raw_dir) / "label.csv")]
    if layout == "cmu" and dataset == "mosi":
        from thne.data.mosi import LABELS, mosi_root

        raw = mosi_root(raw_dir)
        return [str(raw / LABELS), *sorted(map(str, (raw / "Transcript" / "Segmented").glob("*")))]
    if layout == "cmu" and dataset == "mosei":
        from thne.data.mosei import mosei_root

        folder = mosei_root(raw_dir) / "Transcript" / "Segmented" / "Combined"
        return sorted(map(str, folder.glob("*.txt")))
    raise IngestError(f"no known annotation files for layout {layout!r} of {dataset!r}")


def read_layout(
    layout: str, raw_dir: str | os.PathLike, *, dataset: str = "", labels: str | None = None
) -> tuple[list[Clip], list[Rejected]]:
    """Candidate clips and reader-level rejections of a dataset copy in ``layout``.

    The CMU archive layouts differ per dataset, so ``dataset`` (mosi or mosei) picks the reader;
    MOSEI's labels come from the SDK's labels file ``labels``.
    """
    if layout == "mmsa":
        return read_mmsa(raw_dir)
    if layout == "cmu" and dataset == "mosi":
        from thne.data.mosi import read_cmu_mosi

        return read_cmu_mosi(raw_dir)
    if layout == "cmu" and dataset == "mosei":
        from thne.data.mosei import read_cmu_mosei

        if not labels:
            raise IngestError("CMU-MOSEI needs its labels file (CMU_MOSEI_Labels.csd): --labels")
        return read_cmu_mosei(raw_dir, labels)
    if layout == "cmu":
        raise IngestError(f"the CMU layout is known for mosi and mosei, not {dataset!r}")
    raise IngestError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
