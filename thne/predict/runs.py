"""A trained run, loaded from its ``model.pt`` alone: weights, train-split statistics, how its
features and tokens were made, and its encoder's tokenizer and config.

Nothing else of the machine that trained it is needed: the paths the run was trained from
are not used, and the tokenizer and encoder config travel inside ``model.pt``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from thne.errors import InputError
from thne.features.normalise import Normaliser
from thne.text.encoder import encoder_from_files
from thne.train.config import TrainConfig

MODEL_FILE = "model.pt"


class RunError(InputError):
    """A run directory cannot be used for scoring; the message says why and what to do."""


@dataclass
class TrainedRun:
    path: Path
    config: TrainConfig
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    visual_norm: Normaliser
    acoustic_norm: Normaliser
    provenance: dict


def _retrain_hint(path: Path) -> str:
    parts = path.resolve().parts
    target = "/".join(parts[-5:]) if len(parts) >= 5 and parts[-3] == "runs" else str(path)
    return f"retrain it with this thne (snakemake --forcerun train {target}/{MODEL_FILE})"


def load_run(run_dir: str | os.PathLike, device: str = "cpu") -> TrainedRun:
    """The run in ``run_dir`` (``results/<ds>/runs/<variant>/seed<n>``), in eval mode."""
    from thne.train.loop import build_model

    path = Path(run_dir)
    model_file = path / MODEL_FILE
    if not model_file.is_file():
        raise RunError(f"{path}: no {MODEL_FILE} in it (is it a finished run directory?)")
    saved = torch.load(model_file, map_location="cpu", weights_only=False)
    if "provenance" not in saved or "encoder_files" not in saved:
        raise RunError(
            f"{model_file}: written by an older thne that did not record how its features and "
            f"tokens were made, so new media cannot be scored the same way; {_retrain_hint(path)}"
        )
    cfg = TrainConfig(**saved["config"])
    tokenizer, encoder, d_t = encoder_from_files(saved["encoder_files"])
    model = build_model(
        cfg, len(saved["visual_names"]), len(saved["acoustic_names"]), encoder=(encoder, d_t)
    )
    model.load_state_dict(saved["state_dict"])
    model.to(device).eval()
    return TrainedRun(
        path=path,
        config=cfg,
        model=model,
        tokenizer=tokenizer,
        visual_norm=_normaliser(saved["visual_norm"]),
        acoustic_norm=_normaliser(saved["acoustic_norm"]),
        provenance=saved["provenance"],
    )


def _normaliser(saved: dict) -> Normaliser:
    return Normaliser(
        np.asarray(saved["mean"], np.float32),
        np.asarray(saved["std"], np.float32),
        saved["presence"],
    )


def seed_runs(variant_dir: str | os.PathLike) -> list[Path]:
    """The finished seeds of a variant (``.../runs/<variant>/seed<n>``), in seed order."""
    path = Path(variant_dir)
    seeds = (
        [
            p
            for p in path.iterdir()
            if re.fullmatch(r"seed\d+", p.name) and (p / MODEL_FILE).is_file()
        ]
        if path.is_dir()
        else []
    )
    if not seeds:
        raise RunError(f"{path}: no finished seed<n>/{MODEL_FILE} in it")
    return sorted(seeds, key=lambda p: int(p.name[4:]))


def same_inputs(runs: list[TrainedRun]) -> None:
    """Runs scored together must have made their features and tokens the same way."""
    first = runs[0]
    for run in runs[1:]:
        if run.provenance != first.provenance:
            raise RunError(
                f"{run.path} and {first.path} were trained on differently made features or "
                "tokens; score them separately"
            )
