"""The ``predict:`` entries: what each scores, with which runs, under which policy."""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping


def predict_entry(config: Mapping, ds: str, name: str) -> Mapping:
    entry = config.get("predict", {}).get(name)
    if entry is None:
        raise ValueError(f"predict.{name}: no such entry in the config's predict:")
    if entry["dataset"] != ds:
        raise ValueError(
            f"predict.{name} is scored by dataset {entry['dataset']!r}: ask for "
            f"results/{entry['dataset']}/predict/{name}/predictions.tsv"
        )
    return entry


def predict_seeds(config: Mapping, ds: str, name: str) -> list[int]:
    """The seeds whose runs score an entry (default: all of the dataset's)."""
    seeds = predict_entry(config, ds, name).get("seeds")
    return seeds or config["datasets"][ds]["train"]["seeds"]


def predict_inputs(config: Mapping, ds: str, name: str) -> list[str]:
    item = predict_entry(config, ds, name)["input"]
    return [item] if isinstance(item, str) else list(item)


def predict_sources(config: Mapping, ds: str, name: str) -> list[str]:
    """The files that say what to score: a folder's media and transcripts, or the TSV."""
    from thne.predict.inputs import MEDIA_SUFFIXES
    from thne.workflow.sources import media_files

    files = []
    for item in predict_inputs(config, ds, name):
        if os.path.isdir(item):
            files += media_files(item, (*MEDIA_SUFFIXES, ".txt"))
        else:
            files.append(item)
    return files


def predict_models(config: Mapping, ds: str, name: str) -> list[str]:
    variant = predict_entry(config, ds, name)["variant"]
    return [
        f"results/{ds}/runs/{variant}/seed{seed}/model.safetensors"
        for seed in predict_seeds(config, ds, name)
    ]


def predict_flags(inputs: Mapping) -> str:
    """``thne predict``'s flags: each run scoring, and the clips' manifest and features."""
    runs = " ".join(f"--run {shlex.quote(os.path.dirname(m))}" for m in inputs["models"])
    return (
        f"{runs} --manifest {inputs['manifest']} --audio {inputs['audio']}"
        f" --visual {inputs['visual']}"
    )
