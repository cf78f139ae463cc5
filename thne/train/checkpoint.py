"""A run's training state, saved, restored and snapshotted as one record: ``checkpoint.pt``.

:class:`TrainingState` holds everything a run carries from one batch to the next: the model, its
optimiser (:class:`~thne.train.optimiser.Optimiser`: MMIM's holds two), the batch-order
generator, the epochs done and their history, the best validation MAE so far with its weights,
and, when a checkpoint paused an epoch, how far that epoch had come, with what its stage
carries from batch to batch (MMIM's entropy memory). :class:`Checkpointer` writes it when it is
due and stops the run after a stop signal (:class:`StopSignals`).

``checkpoint.pt`` is read with ``torch.load(weights_only=True)``: it holds tensors, the
optimiser's state dict, the stage's carry, and one JSON string with the rest (epochs, history,
the Python and numpy generators). A results folder may come from anywhere, so a checkpoint
that needs more than this to load (a pickle of anything else) is not resumed, and nothing in
it runs.
Nothing is stored twice: best weights are kept only as the rows where they differ from the
model's, and the optimiser's moments only as their non-zero rows (most of the text encoder's
word embeddings never see a token of the training set and keep zero moments).
"""

from __future__ import annotations

import json
import math
import random
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from thne.io import atomic_path
from thne.train.optimiser import Optimiser

CHECKPOINT = "checkpoint.pt"
# 3: a paused epoch has stages, each loss term's clip count and its stage's carry.
CHECKPOINT_FORMAT = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class EpochProgress:
    """How far a training epoch has come. ``order`` is the epoch's order of the training clips:
    one permutation of them per stage of the optimiser, one after the other; the clips left
    are ``order[next_start:]``. ``sums`` holds each loss term's batch-size-weighted sum so far,
    ``counts`` the clips it was summed over, and ``carry`` what the stage under way keeps from
    one batch to the next (:meth:`thne.train.optimiser.Optimiser.step`)."""

    order: torch.Tensor
    next_start: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    carry: dict = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.next_start == len(self.order)

    def means(self) -> dict[str, float]:
        """Each loss term's mean over the clips of the batches that gave it."""
        # One device-to-host copy per term and epoch, not one per batch and term.
        return {k: float(v) / self.counts[k] for k, v in self.sums.items()}


@dataclass
class TrainingState:
    """The training state of a run. ``best_weights`` is None while the best weights are the
    model's current ones (:meth:`keep_best` copies them before the model moves on)."""

    model: torch.nn.Module
    opt: Optimiser
    gen: torch.Generator
    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)
    best_mae: float = math.inf
    best_epoch: int = 0
    best_weights: dict[str, torch.Tensor] | None = None
    progress: EpochProgress | None = None

    def keep_best(self) -> None:
        """Copy the best weights aside before training changes the model."""
        if self.best_epoch and self.best_weights is None:
            # On the CPU: a GPU's memory is for training.
            self.best_weights = {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            }

    def end_epoch(self, epoch: int, train: dict, valid: dict, metrics: dict) -> bool:
        """Record a finished epoch's losses and validation metrics; True if it is the best."""
        self.epoch, self.progress = epoch, None
        self.history.append({"epoch": epoch, "split": "train", **train})
        self.history.append({"epoch": epoch, "split": "valid", **valid, **metrics})
        improved = metrics["mae"] < self.best_mae
        if improved:
            self.best_mae, self.best_epoch, self.best_weights = metrics["mae"], epoch, None
        return improved

    def patience_spent(self, patience: int) -> bool:
        return self.epoch > 0 and self.epoch - self.best_epoch >= patience

    def best_state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict() if self.best_weights is None else self.best_weights

    def snapshot(self, device: torch.device) -> dict:
        """Everything as ``checkpoint.pt`` holds it, for saving at once (on the CPU the
        tensors are the live ones)."""
        model = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        progress = self.progress
        record = {
            "epoch": self.epoch,
            "history": self.history,
            "best_mae": self.best_mae,
            "best_epoch": self.best_epoch,
            "next_start": None if progress is None else progress.next_start,
            "counts": None if progress is None else progress.counts,
            "python_rng": random.getstate(),
            "numpy_rng": _numpy_rng_plain(),
        }
        return {
            "format": CHECKPOINT_FORMAT,
            "record": json.dumps(record, default=_plain),
            "model": model,
            "best_rows": None
            if self.best_weights is None
            else {k: _rows_unlike(v.cpu(), model[k]) for k, v in self.best_weights.items()},
            "optimizer": _compact_optimizer(self.opt.state_dict()),
            "torch_rng": torch.get_rng_state(),
            # Only the training device's generator: another machine may see fewer GPUs.
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "order_rng": self.gen.get_state(),
            "order": None if progress is None else progress.order,
            "sums": None if progress is None else {k: v.cpu() for k, v in progress.sums.items()},
            "carry": None if progress is None else tensors_to(progress.carry, torch.device("cpu")),
        }

    def restore(self, saved: dict, device: torch.device) -> None:
        """Load a snapshot into this state's objects (raises when it does not fit them)."""
        record = json.loads(saved["record"])
        self.model.load_state_dict(saved["model"])
        self.opt.load_state_dict(_expand_optimizer(saved["optimizer"]))
        random.setstate(_tuples(record["python_rng"]))
        np.random.set_state(_numpy_rng_state(record["numpy_rng"]))
        torch.set_rng_state(saved["torch_rng"])
        if saved["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        self.gen.set_state(saved["order_rng"])
        self.epoch, self.history = int(record["epoch"]), list(record["history"])
        self.best_mae, self.best_epoch = float(record["best_mae"]), int(record["best_epoch"])
        rows = saved["best_rows"]
        self.best_weights = (
            None if rows is None else {k: _from_rows(r, saved["model"][k]) for k, r in rows.items()}
        )
        self.progress = (
            None
            if record["next_start"] is None
            else EpochProgress(
                saved["order"],
                int(record["next_start"]),
                saved["sums"],
                {k: int(v) for k, v in record["counts"].items()},
                saved["carry"],
            )
        )


def tensors_to(value: object, device: torch.device) -> object:
    """``value`` with every tensor in it moved to ``device``, through lists, tuples and dicts."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: tensors_to(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(tensors_to(v, device) for v in value)
    return value


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} in a checkpoint record")


def _tuples(value: object) -> object:
    """JSON's lists back into the tuples of ``random.getstate()``."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _numpy_rng_plain() -> dict:
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "key": key.tolist(), "pos": pos, "has_gauss": has_gauss, "gauss": gauss}


def _numpy_rng_state(plain: dict) -> tuple:
    key = np.asarray(plain["key"], dtype=np.uint32)
    return (plain["name"], key, plain["pos"], plain["has_gauss"], plain["gauss"])


def _rows_unlike(value: torch.Tensor, base: torch.Tensor) -> dict:
    """``value`` as the rows whose bits differ from ``base``'s, or whole where most do."""
    if value.dim() < 2 or value.shape != base.shape or value.dtype != base.dtype:
        return {"whole": value}
    bits = value.contiguous().view(torch.uint8).reshape(len(value), -1)
    differ = (bits != base.contiguous().view(torch.uint8).reshape(len(base), -1)).any(dim=1)
    rows = differ.nonzero().squeeze(1)
    if 2 * len(rows) > len(value):
        return {"whole": value}
    return {"rows": rows, "values": value[rows].clone(), "shape": list(value.shape)}


def _from_rows(packed: dict, base: torch.Tensor | None = None) -> torch.Tensor:
    """What :func:`_rows_unlike` stored, on ``base`` (zeros when None)."""
    if "whole" in packed:
        return packed["whole"]
    values = packed["values"]
    value = values.new_zeros(packed["shape"]) if base is None else base.clone()
    value[packed["rows"]] = values
    return value


def _is_optimizer_state(state: object) -> bool:
    return isinstance(state, dict) and set(state) == {"state", "param_groups"}


def _compact_optimizer(state: dict) -> dict:
    """An optimiser's state dict (or MMIM's dict of them) with its moments stored as rows."""
    if not _is_optimizer_state(state):
        return {k: _compact_optimizer(v) if isinstance(v, dict) else v for k, v in state.items()}
    return {
        "param_groups": state["param_groups"],
        "state": {
            i: {
                k: _rows_unlike(v.cpu(), torch.zeros_like(v, device="cpu"))
                if isinstance(v, torch.Tensor)
                else v
                for k, v in s.items()
            }
            for i, s in state["state"].items()
        },
    }


def _expand_optimizer(state: dict) -> dict:
    if not _is_optimizer_state(state):
        return {k: _expand_optimizer(v) if isinstance(v, dict) else v for k, v in state.items()}
    expanded = {
        i: {k: _from_rows(v) if isinstance(v, dict) else v for k, v in s.items()}
        for i, s in state["state"].items()
    }
    return {"param_groups": state["param_groups"], "state": expanded}


def load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The snapshot in ``path`` when it belongs to this run, else None (and say why)."""
    # Temporary files of a save that was killed midway are never resumed from.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    if not path.is_file():
        return None
    try:
        # weights_only: tensors and plain containers only; anything else is refused, unrun.
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint means a fresh start
        refused = re.search(r"GLOBAL (\S+)", str(exc))
        why = (
            f"cannot be resumed (it asks to load {refused.group(1)}, which a checkpoint never "
            "holds; loading it could run code)"
            if refused
            else f"unreadable ({type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]})"
        )
        print(f"{path}: {why}; training from the start", file=sys.stderr)
        return None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        print(
            f"{path}: cannot be resumed (written by another thne version); training from the start",
            file=sys.stderr,
        )
        return None
    if saved.get("fingerprint") != fingerprint:
        print(
            f"{path}: written for another config or other data; training from the start",
            file=sys.stderr,
        )
        return None
    return saved


class TrainingStopped(SystemExit):
    """Raised after a stop signal's checkpoint is written; its code is 128 + the signal, as if
    the signal had ended the process."""


class StopSignals:
    """While active, SIGTERM (a scheduler's time limit, Snakemake's stop) and SIGINT are only
    recorded, so training can write a checkpoint between two batches and then exit. A second
    signal acts as usual. Signal handlers exist in the main thread only; elsewhere this
    records nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._record) for s in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()

    def _record(self, signum: int, frame: object) -> None:
        self.received = signum
        print(
            f"got {signal.Signals(signum).name}: writing a checkpoint, then stopping",
            file=sys.stderr,
            flush=True,
        )
        self._restore()

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}


class Checkpointer:
    """Writes the training state to ``path`` when it is due: the last write is older than
    ``every_s`` (asked between batches and at each epoch's end; 0: at each epoch's end only),
    or a stop signal came."""

    def __init__(
        self,
        path: Path,
        fingerprint: str,
        every_s: float,
        stop: StopSignals,
        device: torch.device,
    ) -> None:
        self.path, self.fingerprint, self.every_s, self.stop = path, fingerprint, every_s, stop
        self.device = device
        self.last = time.monotonic()

    def due_mid_epoch(self) -> bool:
        if self.stop.received is not None:
            return True
        return self.every_s > 0 and time.monotonic() - self.last >= self.every_s

    def due_at_epoch_end(self) -> bool:
        return time.monotonic() - self.last >= self.every_s

    def save(self, state: TrainingState) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, **state.snapshot(self.device)}, tmp)
        self.last = time.monotonic()

    def save_then_stop_if_asked(self, state: TrainingState, due: bool) -> None:
        """Save ``state`` when ``due`` or a stop signal came; then, after a signal, stop."""
        # Read once: a signal arriving after this line is seen at the next call, not here,
        # so a stop always follows a save.
        signum = self.stop.received
        if due or signum is not None:
            self.save(state)
        if signum is not None:
            print(f"checkpoint written to {self.path}; stopping", file=sys.stderr, flush=True)
            raise TrainingStopped(128 + signum)
