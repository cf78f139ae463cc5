"""The per-clip feature extractors, with what a feature file records about each.

The audio and visual stages and ``thne predict`` build their extractors here, so that media
scored by a trained run go through exactly the extraction its training clips did. Each builder
returns an :class:`Extractor`: the feature names, the per-clip function, the extractor's name
and version, and its config, which :func:`thne.features.store.extract_to_h5` writes into the
file's attributes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from thne.data.clips import Clip
from thne.features.audio import AudioConfig
from thne.features.store import ClipExtractor


@dataclass
class Extractor:
    feature_names: list[str]
    extract: ClipExtractor
    name: str
    config: dict


def audio_extractor(cfg: AudioConfig) -> Extractor:
    """librosa's acoustic features (:mod:`thne.features.audio`)."""
    from thne.features.audio import extract_audio_features, feature_names

    return Extractor(
        feature_names(cfg),
        lambda c: extract_audio_features(c.media, c.start, c.end, cfg),
        f"librosa {version('librosa')}",
        dataclasses.asdict(cfg),
    )


def audio_config(config: dict) -> AudioConfig:
    """The :class:`AudioConfig` a feature file's ``config`` attribute records."""
    values = dict(config)
    if "groups" in values:
        values["groups"] = tuple(values["groups"])
    return AudioConfig(**values)


def landmark_extractor(detect_every: int) -> Extractor:
    """dlib landmarks, head pose and geometric measures (:mod:`thne.features.landmarks`)."""
    from thne.features.landmarks import FEATURE_NAMES, LandmarkExtractor
    from thne.features.landmarks import extract_landmark_features as landmarks

    model = LandmarkExtractor()

    def extract(clip: Clip):
        r = landmarks(clip.media, clip.start, clip.end, detect_every=detect_every, extractor=model)
        return r.features, r.timestamps

    return Extractor(
        list(FEATURE_NAMES),
        extract,
        f"dlib-landmarks {version('dlib-bin')}",
        {"extractor": "landmarks", "detect_every": detect_every},
    )


def openface_extractor(
    clips: Sequence[Clip],
    groups: Sequence[str],
    work: str | os.PathLike,
    *,
    run: bool = True,
    plan: str | os.PathLike | None = None,
    binary: str | None = None,
    threads: int = 1,
    log: str | None = None,
) -> Extractor:
    """OpenFace features of the clips' media. With ``run`` OpenFace is run first, in ``work``;
    otherwise ``work`` is a finished run and ``plan`` its plan."""
    from thne.features.openface import (
        extract_openface_clips,
        feature_names,
        plan_inputs,
        run_openface,
        write_plan,
    )
    from thne.media import MediaError

    work = Path(work)
    if run:
        plan = work / "plan.tsv"
        work.mkdir(parents=True, exist_ok=True)
        write_plan(plan_inputs(c.media for c in clips), plan)
        run_openface(plan, work, binary=binary, threads=threads)
    results = extract_openface_clips(clips, plan, work, groups, log=log)

    def extract(clip: Clip):
        result = results[clip.clip_id]
        if isinstance(result, MediaError):
            raise result
        return result

    return Extractor(
        feature_names(groups),
        extract,
        "OpenFace FeatureExtraction",
        {"extractor": "openface", "groups": list(groups)},
    )
