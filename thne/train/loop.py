"""The training loop: plain PyTorch, one epoch after another, model picked on validation MAE.

The test split is evaluated once, with the best-validation weights, after training ends.

The training state (weights, optimiser, random generators, history, the best weights when they
are not the current ones, and how far the epoch has come) is written atomically to
``checkpoint.pt`` in the run directory when the last write is older than
``cfg.checkpoint_every_s`` (checked between batches; 0: at the end of every epoch), and when
the process gets SIGTERM or SIGINT, between two batches, before it exits. Otherwise the best
weights live in memory only and are written once, into ``model.pt``, at the end. A run started
again where a checkpoint exists continues from the batch after it and, on CPU, ends exactly as
an uninterrupted run would. The checkpoint is removed when the run finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from thne.evaluate.metrics import regression_metrics
from thne.io import atomic_path, write_json
from thne.model.thne import THNE, total_loss
from thne.text.encoder import encoder_files, load_encoder
from thne.train.config import TrainConfig
from thne.train.data import Dataset, SplitTensors
from thne.train.forward import autocast, model_inputs

# Column order of history.tsv: t-HNE's terms (Eq. 9), then MMIM's, then the total.
LOSS_TERMS = (
    "task",
    "l_tv",
    "l_ta",
    "l_ft",
    "l_fv",
    "l_fa",
    "lld_tv",
    "lld_ta",
    "h_tv",
    "h_ta",
    "mi_nll",
    "total",
)
CHECKPOINT = "checkpoint.pt"
# Settings that say how a run is carried out, not what it computes: a checkpoint written under
# other values of these is resumed all the same.
NOT_FINGERPRINTED = ("checkpoint_every_s",)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class EpochProgress:
    """A training epoch paused between two batches: the clips left are ``order[next_start:]``,
    ``sums`` the batch-size-weighted loss sums so far."""

    order: torch.Tensor
    next_start: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(
    cfg: TrainConfig,
    visual_dim: int,
    acoustic_dim: int,
    encoder: tuple[torch.nn.Module, int] | None = None,
) -> THNE:
    """t-HNE (one of its variants), or MMIM when ``cfg.model`` says so. ``encoder`` is the
    text encoder and its width; by default ``cfg.encoder``'s pretrained weights."""
    encoder, d_t = encoder or load_encoder(cfg.encoder)
    sizes = {
        "visual_hidden": cfg.visual_hidden,
        "acoustic_hidden": cfg.acoustic_hidden,
        "fusion_dim": cfg.fusion_dim,
        "dropout": cfg.dropout,
    }
    dims = (encoder, d_t, visual_dim, acoustic_dim)
    if cfg.model == "mmim":
        from thne.model.mmim import MMIM

        return MMIM(*dims, **sizes)
    return THNE(*dims, **sizes, variant=cfg.components)


def make_optimizer(model: THNE, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam with two parameter groups: the text encoder at ``bert_lr``, the rest at ``lr``.
    MMIM gets its two optimisers instead (:mod:`thne.train.two_stage`), saved as one."""
    if cfg.model == "mmim":
        from thne.train.two_stage import make_optimizers

        return make_optimizers(model, cfg)
    text = [p for n, p in model.named_parameters() if n.startswith("text_encoder.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("text_encoder.")]
    return torch.optim.Adam(
        [{"params": text, "lr": cfg.bert_lr}, {"params": rest, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
        # The fused kernel does the whole update in one pass: several times faster than the
        # per-tensor loop on CPU, where the encoder's update otherwise costs as much as its
        # backward pass.
        fused=True,
    )


def train_epoch(
    model: THNE,
    split: SplitTensors,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
    progress: EpochProgress | None = None,
    pause: Callable[[], bool] | None = None,
) -> dict[str, float] | EpochProgress:
    """One pass over ``split`` in a random order; the mean loss terms.

    Continues ``progress`` when given. After each batch but the last, ``pause()`` is asked
    whether to stop here; if so, the epoch's progress is returned instead, to be checkpointed
    and passed back in. MMIM's epoch has two stages (:mod:`thne.train.two_stage`) and is not
    paused inside: its checkpoints fall between epochs.
    """
    if cfg.model == "mmim":
        from thne.train import two_stage

        return two_stage.train_epoch(model, split, opt, cfg, gen, device)
    model.train()
    # The permutation comes from a CPU generator, so the order is the same on every device.
    if progress is None:
        progress = EpochProgress(torch.randperm(len(split), generator=gen))
    order = progress.order.to(device)
    sums = {k: v.to(device) for k, v in progress.sums.items()}
    for start in range(progress.next_start, len(split), cfg.batch_size):
        batch = split.batch(order[start : start + cfg.batch_size])
        terms = train_step(model, batch, opt, cfg, device)
        n = batch["label"].shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * n
        next_start = start + cfg.batch_size
        if pause is not None and next_start < len(split) and pause():
            return EpochProgress(progress.order, next_start, sums)
    # One device-to-host copy per epoch, not one per batch and term.
    return {k: float(v) / len(split) for k, v in sums.items()}


def train_step(
    model: THNE,
    batch: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    device: torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """One update on one batch; returns the loss terms of Eq. 9 and their weighted total
    (detached 0-d tensors, left on the device)."""
    with autocast(cfg, device or batch["label"].device):
        out = model(**model_inputs(batch))
        terms = model.losses(out, batch["label"])
        loss = total_loss(terms, cfg.alpha, cfg.beta)
        probe_loss = model.probe_loss(out)
    opt.zero_grad(set_to_none=True)
    (loss + probe_loss).backward()
    # The s_ft probe is clipped on its own: in a shared clip its gradient norm would scale the
    # model's gradients, and the probe must not change the model.
    probe = [p for n, p in model.named_parameters() if n.startswith("cpc_t_probe.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("cpc_t_probe.")]
    torch.nn.utils.clip_grad_norm_(rest, cfg.grad_clip)
    torch.nn.utils.clip_grad_norm_(probe, cfg.grad_clip)
    opt.step()
    return {k: v.detach().float() for k, v in {**terms, "total": loss}.items()}


@torch.no_grad()
def evaluate(
    model: THNE, split: SplitTensors, cfg: TrainConfig, device: torch.device
) -> tuple[dict[str, float], pd.DataFrame]:
    """Loss terms (weighted by batch size), and per-clip predictions with CPC scores."""
    model.eval()
    sums: dict[str, float] = {}
    rows: list[pd.DataFrame] = []
    for start in range(0, len(split), cfg.batch_size):
        index = torch.arange(start, min(start + cfg.batch_size, len(split)))
        batch = split.batch(index.to(device))
        with autocast(cfg, device):
            out = model(**model_inputs(batch))
            terms = model.losses(out, batch["label"])
            scores = {k: v.float().cpu().numpy() for k, v in model.cpc_scores(out).items()}
        n = int(index.numel())
        for k, v in {**terms, "total": model.total_loss(terms, cfg.alpha, cfg.beta)}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        rows.append(
            pd.DataFrame(
                {
                    "clip_id": [split.clip_ids[i] for i in index.tolist()],
                    "label": batch["label"].cpu().numpy(),
                    "prediction": out.pred.float().cpu().numpy(),
                    **{k: scores.get(k, np.full(n, np.nan)) for k in ("s_ft", "s_fv", "s_fa")},
                }
            )
        )
    return {k: v / len(split) for k, v in sums.items()}, pd.concat(rows, ignore_index=True)


def selection_metrics(pred: pd.DataFrame) -> dict[str, float]:
    """Validation metrics; MAE alone where the others are undefined (every label 0)."""
    try:
        return regression_metrics(pred["prediction"], pred["label"])
    except ValueError:
        return {"mae": float(np.mean(np.abs(pred["prediction"] - pred["label"])))}


def run_fingerprint(cfg: TrainConfig, data: Dataset) -> str:
    """What a checkpoint must match to be resumed: the config, and every split's clips and
    tensors as the model sees them (after normalisation and the frame cap), with the feature
    names. Re-extracted features or a changed statistic make a fresh start."""
    config = {k: v for k, v in asdict(cfg).items() if k not in NOT_FINGERPRINTED}
    digest = hashlib.blake2b(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps([data.visual_names, data.acoustic_names]).encode())
    for name in sorted(data.splits):
        split = data.splits[name]
        digest.update(name.encode())
        digest.update("\n".join(split.clip_ids).encode())
        for value in vars(split).values():
            if isinstance(value, torch.Tensor):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _rng_state(gen: torch.Generator, device: torch.device) -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        # Only the training device's generator: another machine may see fewer GPUs.
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "order": gen.get_state(),
    }


def _set_rng_state(state: dict, gen: torch.Generator, device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    gen.set_state(state["order"])


def _load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` when it belongs to this run, else None (and say why)."""
    # Temporary files of a save that was killed midway are never resumed from.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - an unreadable checkpoint means a fresh start
        print(f"{path}: unreadable ({exc}); training from the start", file=sys.stderr)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        print(
            f"{path}: written for another config or other data; training from the start",
            file=sys.stderr,
        )
        return None
    return state


class Checkpointer:
    """Writes the training state to ``path`` when it is due: the last write is older than
    ``every_s`` (asked between batches and at each epoch's end; 0: at each epoch's end only),
    or a stop signal came."""

    def __init__(self, path: Path, fingerprint: str, every_s: float, stop: StopSignals) -> None:
        self.path, self.fingerprint, self.every_s, self.stop = path, fingerprint, every_s, stop
        self.last = time.monotonic()

    def due_mid_epoch(self) -> bool:
        if self.stop.received is not None:
            return True
        return self.every_s > 0 and time.monotonic() - self.last >= self.every_s

    def due_at_epoch_end(self) -> bool:
        return time.monotonic() - self.last >= self.every_s

    def save(self, state: dict) -> None:
        with atomic_path(self.path) as tmp:
            torch.save({"fingerprint": self.fingerprint, **state}, tmp)
        self.last = time.monotonic()

    def save_then_stop_if_asked(self, snapshot: Callable[[], dict], due: bool) -> None:
        """Save ``snapshot()`` when ``due`` or a stop signal came; then, after a signal, stop."""
        # Read once: a signal arriving after this line is seen at the next call, not here,
        # so a stop always follows a save.
        signum = self.stop.received
        if due or signum is not None:
            self.save(snapshot())
        if signum is not None:
            print(f"checkpoint written to {self.path}; stopping", file=sys.stderr, flush=True)
            raise TrainingStopped(128 + signum)


def _fresh_start(
    cfg: TrainConfig, data: Dataset, dev: torch.device
) -> tuple[THNE, torch.optim.Optimizer, torch.Generator]:
    """Model, optimiser and batch-order generator as the first epoch of a run sees them."""
    seed_everything(cfg.seed)
    model = build_model(cfg, len(data.visual_names), len(data.acoustic_names)).to(dev)
    return model, make_optimizer(model, cfg), torch.Generator().manual_seed(cfg.seed)


def train_run(
    data: Dataset,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
) -> dict:
    """Train one seed of one variant and write its run directory: ``model.pt`` (best-validation
    weights), ``history.tsv``, ``valid_metrics.json`` and the test ``predictions.tsv``.

    Resumes from ``checkpoint.pt`` in ``out_dir`` when one written for the same config and data
    is there. Checkpoints are written every ``cfg.checkpoint_every_s`` seconds, and on SIGTERM
    or SIGINT, after which :class:`TrainingStopped` (a ``SystemExit``) is raised. Returns the
    validation metrics of the chosen epoch. Test metrics are the evaluate stage's job
    (``thne evaluate``), computed from ``predictions.tsv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    model, opt, gen = _fresh_start(cfg, data, dev)
    # Every split is moved to the device once; batches are slices of it. The dataset then holds
    # the moved splits, so the host copies are freed (MOSEI's are gigabytes).
    data.splits.update({s: t.to(dev) for s, t in data.splits.items()})
    train, valid, test = (data.splits[s] for s in ("train", "valid", "test"))

    fingerprint = run_fingerprint(cfg, data)
    checkpoint = out / CHECKPOINT
    history: list[dict] = []
    best_mae, best_epoch, best_state, first_epoch = float("inf"), 0, None, 1
    # best_is_model: the best weights are the model's current ones (a checkpoint then holds
    # them once). progress: how far the epoch under way has come, when a checkpoint paused it.
    best_is_model, progress = False, None
    state = _load_checkpoint(checkpoint, fingerprint)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], gen, dev)
            progress = state["progress"] and EpochProgress(**state["progress"])
            best_is_model = state["best_is_model"]
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            print(
                f"{checkpoint}: cannot be resumed ({exc}); training from the start", file=sys.stderr
            )
            # A failed load may have changed some tensors: start from fresh objects.
            model, opt, gen = _fresh_start(cfg, data, dev)
            state, progress, best_is_model = None, None, False
    if state is not None:
        history, best_mae, best_epoch = state["history"], state["best_mae"], state["best_epoch"]
        best_state = (
            {k: v.clone() for k, v in state["model"].items()}
            if best_is_model
            else state["best_state"]
        )
        first_epoch = state["epoch"] + 1
        where = (
            f"in epoch {first_epoch} at clip {progress.next_start} of {len(train)}"
            if progress is not None
            else f"after epoch {state['epoch']}"
        )
        print(f"resuming {where} from {checkpoint}", file=sys.stderr)

    def snapshot(finished_epoch: int) -> dict:
        """The training state after ``finished_epoch`` and ``progress`` into the next one."""
        return {
            "epoch": finished_epoch,
            "progress": progress
            and {
                "order": progress.order,
                "next_start": progress.next_start,
                "sums": {k: v.cpu() for k, v in progress.sums.items()},
            },
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": _rng_state(gen, dev),
            "history": history,
            "best_mae": best_mae,
            "best_epoch": best_epoch,
            "best_is_model": best_is_model,
            "best_state": None if best_is_model else best_state,
        }

    stopped = state is not None and state["epoch"] - best_epoch >= cfg.patience
    with StopSignals() as stop:
        saver = Checkpointer(checkpoint, fingerprint, cfg.checkpoint_every_s, stop)
        for epoch in range(first_epoch, cfg.max_epochs + 1):
            if stopped:
                break
            t0 = time.perf_counter()
            while True:
                result = train_epoch(
                    model, train, opt, cfg, gen, dev, progress, saver.due_mid_epoch
                )
                best_is_model = False
                if not isinstance(result, EpochProgress):
                    break
                progress = result
                saver.save_then_stop_if_asked(partial(snapshot, epoch - 1), due=True)
            progress, train_losses = None, result
            valid_losses, valid_pred = evaluate(model, valid, cfg, dev)
            valid_metrics = selection_metrics(valid_pred)
            if not np.isfinite(valid_metrics["mae"]):
                raise FloatingPointError(
                    f"training diverged: validation MAE is {valid_metrics['mae']} at epoch {epoch}"
                )
            history.append({"epoch": epoch, "split": "train", **train_losses})
            history.append({"epoch": epoch, "split": "valid", **valid_losses, **valid_metrics})
            improved = valid_metrics["mae"] < best_mae
            if improved:
                best_mae, best_epoch, best_is_model = valid_metrics["mae"], epoch, True
                # Kept in memory; written into model.pt once, at the end.
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            mark = "  *" if improved else ""
            print(
                f"epoch {epoch:3d}  train loss {train_losses['total']:.4f}  valid mae "
                f"{valid_metrics['mae']:.4f}{mark}  ({time.perf_counter() - t0:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            saver.save_then_stop_if_asked(partial(snapshot, epoch), saver.due_at_epoch_end())
            stopped = epoch - best_epoch >= cfg.patience
        # A signal that came after the last epoch's check.
        last = int(history[-1]["epoch"]) if history else 0
        saver.save_then_stop_if_asked(partial(snapshot, last), due=False)

    model.load_state_dict(best_state)
    _, valid_pred = evaluate(model, valid, cfg, dev)
    # The test split is looked at only here, with the weights chosen on validation.
    _, test_pred = evaluate(model, test, cfg, dev)
    valid_metrics = selection_metrics(valid_pred)

    with atomic_path(out / "model.pt") as tmp:
        torch.save(
            {
                "state_dict": best_state,
                "config": asdict(cfg),
                "epoch": best_epoch,
                "visual_norm": asdict(data.visual_norm),
                "acoustic_norm": asdict(data.acoustic_norm),
                "visual_names": data.visual_names,
                "acoustic_names": data.acoustic_names,
                # What thne predict needs to score new media as these clips were: how their
                # features and tokens were made, and the tokenizer's and encoder's config files
                # (the weights are in state_dict), so the run loads on any machine.
                "provenance": data.provenance,
                "encoder_files": encoder_files(cfg.encoder),
            },
            tmp,
        )
    hist = pd.DataFrame(history)
    hist = hist[
        [c for c in ["epoch", "split", *LOSS_TERMS] if c in hist]
        + [c for c in hist.columns if c not in {"epoch", "split", *LOSS_TERMS}]
    ]
    with atomic_path(out / "history.tsv") as tmp:
        hist.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    with atomic_path(out / "predictions.tsv") as tmp:
        test_pred.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    info = {
        "variant": cfg.variant,
        "seed": cfg.seed,
        "best_epoch": best_epoch,
        "epochs": int(hist["epoch"].max()),
        "n_clips": {s: len(t) for s, t in data.splits.items()},
        "left_out": data.dropped,
    }
    write_json(out / "valid_metrics.json", {**info, **valid_metrics})
    # Written last: until here a rerun can still resume.
    checkpoint.unlink(missing_ok=True)
    return valid_metrics
