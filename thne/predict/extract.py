"""Features of the clips to score, made exactly as the run's training clips' were.

The run's ``run.json`` records each feature file's extractor, config and feature names; the
extractors are rebuilt from them with the builders the audio and visual stages use (in
:mod:`thne.features.audio`, :mod:`thne.features.landmarks` and :mod:`thne.features.openface`)
and run through :func:`thne.features.store.extract_to_h5`, so decoding, face and audio problems
end in the same errors and exclusions as in the pipeline.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from thne.data.clips import Clip
from thne.errors import InputError
from thne.features.audio import audio_config, audio_extractor
from thne.features.landmarks import landmark_extractor
from thne.features.openface import openface_extractor
from thne.features.store import Exclusion, Extractor, extract_to_h5


class FeatureConfigError(InputError):
    """The run's features cannot be made again from media."""


def _check_names(modality: str, extractor: Extractor, recorded: dict) -> Extractor:
    if extractor.feature_names != recorded["feature_names"]:
        raise FeatureConfigError(
            f"{modality} features: this thne's {extractor.name} makes other feature columns "
            "than the run was trained on; retrain the run with this thne"
        )
    if extractor.name != recorded["extractor"]:
        print(
            f"{modality} features: the run was trained with {recorded['extractor']}, this is "
            f"{extractor.name}; features may differ slightly",
            file=sys.stderr,
        )
    return extractor


# The visual extractors the pipeline runs on media (a run.json's visual config "extractor").
MEDIA_VISUAL_EXTRACTORS = ("landmarks", "openface")


def _made_by_librosa(recorded: dict) -> bool:
    return str(recorded.get("extractor", "")).startswith("librosa")


def _visual_kind(recorded: dict) -> str | None:
    cfg = recorded.get("config")
    return cfg.get("extractor") if isinstance(cfg, dict) else None


def can_extract(provenance: dict) -> bool:
    """Whether a run's features can be made again from media: not imported ones."""
    acoustic, visual = provenance.get("acoustic", {}), provenance.get("visual", {})
    return _made_by_librosa(acoustic) and _visual_kind(visual) in MEDIA_VISUAL_EXTRACTORS


def acoustic_extractor(recorded: dict) -> Extractor:
    if not _made_by_librosa(recorded):
        raise FeatureConfigError(
            f"the run was trained on imported acoustic features ({recorded['extractor']}); "
            "thne predict can only extract features the pipeline extracts (librosa)"
        )
    return _check_names("acoustic", audio_extractor(audio_config(recorded["config"])), recorded)


def visual_extractor(
    recorded: dict, clips: Sequence[Clip], work: Path, threads: int = 1
) -> Extractor:
    cfg = recorded["config"]
    kind = _visual_kind(recorded)
    if kind == "landmarks":
        extractor = landmark_extractor(int(cfg["detect_every"]))
    elif kind == "openface":
        extractor = openface_extractor(clips, cfg["groups"], work / "openface", threads=threads)
    else:
        raise FeatureConfigError(
            f"the run was trained on imported visual features ({recorded['extractor']}); "
            "thne predict can only extract features the pipeline extracts (landmarks, OpenFace)"
        )
    return _check_names("visual", extractor, recorded)


def extract_features(
    clips: Sequence[Clip],
    provenance: dict,
    work: str | os.PathLike,
    *,
    on_bad_clip: str = "fail",
    threads: int = 1,
) -> tuple[Path, Path, list[Exclusion]]:
    """Write ``audio.h5`` and ``visual.h5`` of ``clips`` into ``work``; return their paths and
    the clips excluded (``on_bad_clip="exclude"``) with the reasons."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    excluded: list[Exclusion] = []
    paths = {}
    for name, build in (
        ("audio", lambda: acoustic_extractor(provenance["acoustic"])),
        ("visual", lambda: visual_extractor(provenance["visual"], clips, work, threads)),
    ):
        extractor = build()
        paths[name] = work / f"{name}.h5"
        excluded += extract_to_h5(
            clips,
            paths[name],
            extractor.extract,
            feature_names=extractor.feature_names,
            extractor=extractor.name,
            config=extractor.config,
            on_bad_clip=on_bad_clip,
            desc=name,
            # OpenFace used its threads already; reading its CSVs is quick.
            workers=1 if extractor.config.get("extractor") == "openface" else threads,
        )
    return paths["audio"], paths["visual"], excluded
