"""A trained run's directory: written by training (:func:`save_run`), read by ``thne predict``
(:func:`load_run`). Nothing in it is a pickle, so opening a run someone handed over runs no
code of theirs:

- ``model.safetensors``: the best-validation weights (safetensors: tensors and nothing else);
- ``run.json``: the config, the chosen epoch, the train-split statistics, the feature names
  and how the features and tokens were made (provenance);
- ``encoder/``: the text encoder's tokenizer files and config (its weights are in
  ``model.safetensors``), so the run loads on a machine that lacks the encoder.

Nothing else of the machine that trained it is needed: the paths the run was trained from are
not used. Runs of older thne versions kept all of this in a pickled ``model.pt``, which is never
opened: such a run is to be trained again.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from thne.errors import InputError
from thne.features.normalise import Normaliser
from thne.io import atomic_path, write_json
from thne.model.build import build_model
from thne.text.loader import TextTokenizer, run_encoder, run_encoder_files
from thne.train.config import TrainConfig

MODEL_FILE = "model.safetensors"
RUN_FILE = "run.json"
ENCODER_DIR = "encoder"
# Where older thne versions kept a run: a pickle, which is never loaded.
OLD_MODEL_FILE = "model.pt"
RUN_FORMAT = 2
_RUN_KEYS = (
    "config",
    "epoch",
    "visual_norm",
    "acoustic_norm",
    "visual_names",
    "acoustic_names",
    "provenance",
    "encoder_files",
)


class RunError(InputError):
    """A run directory cannot be used for scoring; the message says why and what to do."""


@dataclass
class TrainedRun:
    path: Path
    config: TrainConfig
    model: nn.Module
    tokenizer: TextTokenizer
    visual_norm: Normaliser
    acoustic_norm: Normaliser
    provenance: dict
    # What the run's evaluation ran in (bf16 or float32); predict scores in the same.
    precision: str = "float32"


def save_run(
    out: Path,
    state_dict: dict[str, torch.Tensor],
    cfg: TrainConfig,
    epoch: int,
    visual_norm: Normaliser,
    acoustic_norm: Normaliser,
    visual_names: list[str],
    acoustic_names: list[str],
    provenance: dict,
    precision: str = "float32",
) -> None:
    """Write the run files into ``out``: ``model.safetensors`` first (the largest, so that a
    full disk stops the run before anything else is written), then ``encoder/`` and
    ``run.json``."""
    # Serialised in memory and written by Python, so that a failed write (a full disk) is the
    # OSError that atomic_path reports, as for every other output.
    weights = save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()})
    with atomic_path(out / MODEL_FILE) as tmp:
        tmp.write_bytes(weights)
    del weights
    files = run_encoder_files(cfg.encoder)
    for name, data in files.items():
        with atomic_path(out / ENCODER_DIR / name) as tmp:
            tmp.write_bytes(data)
    write_json(
        out / RUN_FILE,
        {
            "format": RUN_FORMAT,
            "config": asdict(cfg),
            "epoch": epoch,
            "visual_norm": _plain_norm(visual_norm),
            "acoustic_norm": _plain_norm(acoustic_norm),
            "visual_names": list(visual_names),
            "acoustic_names": list(acoustic_names),
            # What thne predict needs to score new media as these clips were: how their
            # features and tokens were made.
            "provenance": provenance,
            "encoder_files": sorted(files),
            "precision": precision,
        },
    )


def _plain_norm(norm: Normaliser) -> dict:
    # float32 values written as JSON numbers come back bit for bit.
    return {"mean": norm.mean.tolist(), "std": norm.std.tolist(), "presence": norm.presence}


def _retrain_hint(path: Path) -> str:
    """The command that retrains the run in ``path`` and nothing else: --force reruns the job
    of the target it names (the train, grid or tuned run), whatever its rule."""
    parts = path.resolve().parts
    start = len(parts) - 1 - parts[::-1].index("results") if "results" in parts else None
    target = "/".join(parts[start:]) if start is not None else str(path)
    return (
        f"retrain it with this thne: snakemake --cores 1 --force {target}/{MODEL_FILE} "
        "(from the repository root, with the --configfile it was trained with)"
    )


def read_run(run_dir: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """``run.json`` and the weights of the run in ``run_dir``, read as data only."""
    path = Path(run_dir)
    model_file, run_file = path / MODEL_FILE, path / RUN_FILE
    if not model_file.is_file() or not run_file.is_file():
        if (path / OLD_MODEL_FILE).is_file():
            # Never unpickled: a model.pt from elsewhere could run any code when loaded.
            raise RunError(
                f"{path / OLD_MODEL_FILE}: written by an older thne, whose runs are pickles that "
                f"are not opened because loading them can run code; {_retrain_hint(path)}"
            )
        missing = " and ".join(f.name for f in (model_file, run_file) if not f.is_file())
        raise RunError(f"{path}: no {missing} in it (is it a finished run directory?)")
    try:
        info = json.loads(run_file.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{run_file}: not readable JSON ({exc}); {_retrain_hint(path)}") from exc
    absent = [k for k in _RUN_KEYS if not isinstance(info, dict) or k not in info]
    if absent:
        raise RunError(f"{run_file}: lacks {', '.join(absent)}; {_retrain_hint(path)}")
    try:
        weights = load_file(model_file, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{model_file}: not readable safetensors ({exc})") from exc
    return info, weights


def load_run(run_dir: str | os.PathLike, device: str = "cpu") -> TrainedRun:
    """The run in ``run_dir`` (``results/<ds>/runs/<variant>/seed<n>``), in eval mode."""
    path = Path(run_dir)
    info, weights = read_run(path)
    files = {}
    for name in info["encoder_files"]:
        file = path / ENCODER_DIR / name
        if Path(name).name != name or not file.is_file():
            raise RunError(f"{path / ENCODER_DIR}: no {name} in it; {_retrain_hint(path)}")
        files[name] = file.read_bytes()
    try:
        cfg = TrainConfig(**info["config"])
    except (TypeError, ValueError) as exc:
        raise RunError(
            f"{path / RUN_FILE}: its config is not one this thne trains ({exc}); "
            f"{_retrain_hint(path)}"
        ) from exc
    tokenizer, encoder, d_t = run_encoder(files)
    model = build_model(
        cfg, len(info["visual_names"]), len(info["acoustic_names"]), encoder=(encoder, d_t)
    )
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise RunError(
            f"{path / MODEL_FILE}: its weights do not fit the model run.json describes "
            f"({str(exc).splitlines()[0]}); {_retrain_hint(path)}"
        ) from exc
    model.to(device).eval()
    return TrainedRun(
        path=path,
        config=cfg,
        model=model,
        tokenizer=tokenizer,
        visual_norm=_normaliser(info["visual_norm"]),
        acoustic_norm=_normaliser(info["acoustic_norm"]),
        provenance=info["provenance"],
        # Runs written before precision was recorded: float32, what a CPU run evaluated in.
        precision=info.get("precision", "float32"),
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
            if re.fullmatch(r"seed\d+", p.name)
            # An older run is listed too, so that loading it says to retrain it.
            and ((p / MODEL_FILE).is_file() or (p / OLD_MODEL_FILE).is_file())
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
