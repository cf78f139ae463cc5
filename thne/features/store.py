"""Feature HDF5 files: one group per clip, written atomically.

Layout (see the README, "File contracts"): ``/<clip_id>/features`` float32 [T, D] and
``/<clip_id>/timestamps`` float32 [T]; file attributes ``feature_names``, ``extractor``,
``config`` (JSON) and ``excluded`` (JSON list of clips left out, with reasons).
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import h5py
import numpy as np
from tqdm import tqdm

from thne.data.clips import BAD_CLIP_POLICIES, Clip, clip_problem
from thne.errors import InputError
from thne.io import atomic_path, ensure_room
from thne.media import STREAM_END_SLACK_S, MediaError


class ClipError(InputError):
    """A clip's features could not be computed; the message names the clip and its file."""


@dataclass(frozen=True)
class Exclusion:
    clip_id: str
    reason: str


ClipExtractor = Callable[[Clip], tuple[np.ndarray, np.ndarray]]


@dataclass
class Extractor:
    """A per-clip extractor with what a feature file records about it: the feature names, the
    function, the extractor's name and version, and its config. The audio and visual stages
    and ``thne predict`` build theirs with the same builders (``audio_extractor`` in
    :mod:`thne.features.audio`, ``landmark_extractor`` and ``openface_extractor``), so scored
    media go through exactly the extraction a run's training clips did."""

    feature_names: list[str]
    extract: ClipExtractor
    name: str
    config: dict


# The extractor and clips, in each forked worker only (set by its initializer): extractors
# holding loaded models or closures are inherited through fork, never pickled.
_WORKER_JOB: tuple[ClipExtractor, list[Clip]] | None = None


def _init_worker(extract: ClipExtractor, clips: list[Clip]) -> None:
    global _WORKER_JOB
    _WORKER_JOB = (extract, clips)


def _extract(extract: ClipExtractor, clip: Clip) -> tuple[np.ndarray, np.ndarray] | Exception:
    try:
        return extract(clip)
    except Exception as exc:  # noqa: BLE001 - reported with its clip by the caller
        return exc


def _extract_one(index: int) -> tuple[np.ndarray, np.ndarray] | Exception:
    extract, clips = _WORKER_JOB
    return _extract(extract, clips[index])


def _results(
    extract: ClipExtractor, clips: list[Clip], workers: int
) -> Iterator[tuple[np.ndarray, np.ndarray] | Exception]:
    """Each clip's features or its error, in clip order, from ``workers`` processes."""
    if workers <= 1 or len(clips) <= 1:
        for clip in clips:
            yield _extract(extract, clip)
        return
    # The first clip runs here, before the workers fork: what the extractor compiles or loads
    # on first use (librosa's numba functions, a face detector) is inherited by every worker
    # instead of being redone in each. A numba compile in a forked worker also crashes it at
    # times.
    yield _extract(extract, clips[0])
    pool = ProcessPoolExecutor(
        min(workers, len(clips) - 1),
        mp_context=multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(extract, clips),
    )
    try:
        yield from pool.map(_extract_one, range(1, len(clips)))
    except BrokenProcessPool as exc:
        # A worker that dies (a crash, the OOM killer) fails the stage instead of hanging it.
        raise RuntimeError(
            f"a feature-extraction worker process ended abruptly ({exc}); rerun with one "
            "thread to see the clip's own error"
        ) from exc
    finally:
        # Stopping early (a bad clip with on_bad_clip: fail) does not wait for the rest.
        pool.shutdown(wait=False, cancel_futures=True)


def coverage_problem(clip: Clip, timestamps: np.ndarray) -> str | None:
    """Why the frames decoded for ``clip`` do not reach its end, or None when they do.

    The last frame covers one step (a video frame, an acoustic hop) past its timestamp, and
    a stream may end up to ``STREAM_END_SLACK_S`` before the clip (a sound track often stops
    a little before the picture); anything shorter is a cut file that decoded without error.
    """
    need = clip.end - clip.start
    ts = np.asarray(timestamps, dtype=np.float64)
    step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
    reached = float(ts[-1]) + step if len(ts) else 0.0
    if reached >= need - step - STREAM_END_SLACK_S:
        return None
    return (
        f"decoded {reached:.2f} s of {need:.2f} s: the media ends before the clip does "
        "(a truncated file)"
    )


def extract_to_h5(
    clips: Iterable[Clip],
    out_path: str | os.PathLike,
    extract: ClipExtractor,
    *,
    feature_names: list[str],
    extractor: str,
    config: dict,
    on_bad_clip: str = "fail",
    desc: str = "features",
    workers: int = 1,
) -> list[Exclusion]:
    """Run ``extract`` on every clip and write the feature file; return the clips left out.

    ``workers`` > 1 runs clips in that many forked processes; the file is the same.

    With ``on_bad_clip="fail"`` the first clip whose media cannot be read stops the stage with
    an error naming the clip and its file. With ``"exclude"`` it is recorded in the file's
    ``excluded`` attribute and the stage goes on.
    """
    if on_bad_clip not in BAD_CLIP_POLICIES:
        raise ValueError(f"on_bad_clip must be one of {BAD_CLIP_POLICIES}, got {on_bad_clip!r}")
    clips = list(clips)
    excluded: list[Exclusion] = []
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs["feature_names"] = np.array(feature_names, dtype=h5py.string_dtype())
        h5.attrs["extractor"] = extractor
        h5.attrs["config"] = json.dumps(config, sort_keys=True)
        results = zip(clips, _results(extract, clips, workers), strict=True)
        progress = tqdm(results, total=len(clips), desc=desc, unit="clip", mininterval=2.0)
        for clip, result in progress:
            if isinstance(result, Exception):
                exc = result
                reason = str(exc) if isinstance(exc, MediaError) else f"{type(exc).__name__}: {exc}"
                if on_bad_clip == "fail":
                    raise ClipError(clip_problem(clip, reason)) from exc
                excluded.append(Exclusion(clip.clip_id, reason))
                continue
            feats, ts = result
            short = coverage_problem(clip, ts)
            if short:
                if on_bad_clip == "fail":
                    raise ClipError(clip_problem(clip, short))
                excluded.append(Exclusion(clip.clip_id, short))
                continue
            if feats.ndim != 2 or feats.shape[1] != len(feature_names):
                raise ClipError(
                    f"clip {clip.clip_id} ({clip.media}): features have shape {feats.shape}, "
                    f"expected [T, {len(feature_names)}]"
                )
            feats, ts = np.asarray(feats, np.float32), np.asarray(ts, np.float32)
            ensure_room(tmp, feats.nbytes + ts.nbytes)
            group = h5.create_group(clip.clip_id)
            group.create_dataset("features", data=feats)
            group.create_dataset("timestamps", data=ts)
        h5.attrs["excluded"] = json.dumps([e.__dict__ for e in excluded])
    return excluded


@dataclass
class FeatureFile:
    feature_names: list[str]
    extractor: str
    config: dict
    excluded: list[dict]
    features: dict[str, np.ndarray]


def read_h5(path: str | os.PathLike, clip_ids: Iterable[str] | None = None) -> FeatureFile:
    """Load a feature file; only ``clip_ids`` when given (those absent are simply not returned)."""
    # locking=False: read-only access must work on network filesystems without flock support.
    with h5py.File(path, "r", locking=False) as h5:
        wanted = list(h5.keys()) if clip_ids is None else [c for c in clip_ids if c in h5]
        return FeatureFile(
            feature_names=[
                n.decode() if isinstance(n, bytes) else str(n) for n in h5.attrs["feature_names"]
            ],
            extractor=str(h5.attrs["extractor"]),
            config=json.loads(h5.attrs["config"]),
            excluded=json.loads(h5.attrs.get("excluded", "[]")),
            features={c: h5[c]["features"][()] for c in wanted},
        )


def merge_h5(parts: Sequence[str | os.PathLike], out_path: str | os.PathLike) -> int:
    """Join shard feature files into one; returns the number of clips.

    The shards must come from one extractor with one configuration; clips and exclusions are
    concatenated, and a clip id found in two shards is an error.
    """
    if not parts:
        raise ValueError("no shard files to merge")
    attrs = None
    excluded: list[dict] = []
    n = 0
    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as out:
        for part in parts:
            with h5py.File(part, "r", locking=False) as h5:
                these = {k: h5.attrs[k] for k in ("feature_names", "extractor", "config")}
                if attrs is None:
                    attrs = these
                    for key, value in attrs.items():
                        out.attrs[key] = value
                elif list(these["feature_names"]) != list(attrs["feature_names"]) or any(
                    these[k] != attrs[k] for k in ("extractor", "config")
                ):
                    raise ValueError(
                        f"{part}: made by another extractor or configuration than {parts[0]}"
                    )
                for clip_id in h5:
                    if clip_id in out:
                        raise ValueError(f"{part}: clip {clip_id} is in another shard too")
                    ensure_room(tmp, sum(d.nbytes for d in h5[clip_id].values()))
                    h5.copy(h5[clip_id], out, name=clip_id)
                    n += 1
                excluded += json.loads(h5.attrs.get("excluded", "[]"))
        out.attrs["excluded"] = json.dumps(excluded)
    return n
