"""The training loop: plain PyTorch, one epoch after another, model picked on validation MAE.

The loop is the same for every model: each brings its optimisers and update step behind the
interface of :class:`~thne.train.optimiser.Optimiser` (:data:`OPTIMISERS`), and an epoch is one
pass over the training split per stage of it. The test split is evaluated once, with the
best-validation weights, after training ends.

The training state (:class:`~thne.train.checkpoint.TrainingState`: weights, optimiser, random
generators, history, the best weights, how far the epoch has come) is written atomically to
``checkpoint.pt`` in the run directory when the last write is older than
``cfg.checkpoint_every_s`` (checked between batches; 0: at the end of every epoch), and when
the process gets SIGTERM or SIGINT, between two batches, before it exits. Otherwise the best
weights live in memory only and are written once, into the run's files
(:func:`~thne.runs.save_run`), at the end. A run started again where a checkpoint
exists continues from the batch after it and, on CPU, ends exactly as an uninterrupted run
would. The checkpoint is removed when the run finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from thne.evaluate.metrics import constant_warning, regression_metrics
from thne.io import atomic_path, write_json
from thne.model.build import build_model
from thne.model.mmim import MMIM
from thne.model.thne import THNE
from thne.runs import save_run
from thne.train.checkpoint import (
    CHECKPOINT,
    Checkpointer,
    EpochProgress,
    StopSignals,
    TrainingState,
    load_checkpoint,
    tensors_to,
)
from thne.train.config import TrainConfig
from thne.train.data import Dataset, SplitTensors
from thne.train.forward import autocast, model_inputs, precision
from thne.train.mmim_optimiser import MMIMOptimiser
from thne.train.optimiser import Optimiser
from thne.train.thne_optimiser import THNEOptimiser

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
# Settings that say how a run is carried out, not what it computes: a checkpoint written under
# other values of these is resumed all the same.
NOT_FINGERPRINTED = ("checkpoint_every_s",)
# Each model's optimisers and update step, by the model's class.
OPTIMISERS: dict[type[torch.nn.Module], type[Optimiser]] = {
    THNE: THNEOptimiser,
    MMIM: MMIMOptimiser,
}


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_optimiser(model: torch.nn.Module, cfg: TrainConfig) -> Optimiser:
    """The optimiser of ``model``'s kind (:data:`OPTIMISERS`)."""
    return OPTIMISERS[type(model)](model, cfg)


def train_epoch(
    model: torch.nn.Module,
    split: SplitTensors,
    opt: Optimiser,
    cfg: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
    progress: EpochProgress | None = None,
    pause: Callable[[], bool] | None = None,
) -> EpochProgress:
    """One pass over ``split`` per stage of ``opt``, each in a random order of its own, in
    batches of ``cfg.batch_size``; returns the epoch's progress, its loss sums included.

    Continues ``progress`` when given. After each batch but the epoch's last, ``pause()`` is
    asked whether to stop there; if so, the progress is returned unfinished, to be
    checkpointed and passed back in.
    """
    model.train()
    n = len(split)
    if progress is None:
        # From a CPU generator, so the order is the same on every device. The generator draws
        # nothing else, so the stages' orders drawn here are those each would draw at its start.
        progress = EpochProgress(torch.cat([torch.randperm(n, generator=gen) for _ in opt.stages]))
    order = progress.order.to(device)
    sums = {k: v.to(device) for k, v in progress.sums.items()}
    counts = dict(progress.counts)
    carry = tensors_to(progress.carry, device)
    for i, stage in enumerate(opt.stages):
        end = (i + 1) * n  # the stage's clips are order[i * n : end]
        for start in range(i * n, end, cfg.batch_size):
            if start < progress.next_start:
                continue  # trained before the pause
            if start == i * n:
                carry = {}  # each stage starts with nothing carried
            stop = min(start + cfg.batch_size, end)
            batch = split.batch(order[start:stop])
            size = batch["label"].shape[0]
            for k, v in opt.step(stage, batch, carry).items():
                sums[k] = sums.get(k, 0.0) + v * size
                counts[k] = counts.get(k, 0) + size
            if pause is not None and stop < len(order) and pause():
                return EpochProgress(progress.order, stop, sums, counts, carry)
    return EpochProgress(progress.order, len(order), sums, counts)


@torch.no_grad()
def evaluate(
    model: torch.nn.Module, split: SplitTensors, cfg: TrainConfig, device: torch.device
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
                _hash_tensor(digest, value)
    return digest.hexdigest()


def _hash_tensor(digest: hashlib.blake2b, value: torch.Tensor, chunk_bytes: int = 64 << 20) -> None:
    """Feed ``value``'s bytes (C order) to ``digest`` a block of rows at a time: the same
    digest as its whole bytes, without a host copy of a whole split's tensor where it lives on
    the GPU (MOSEI's train acoustic tensor is 2.3 GiB)."""
    value = value.detach()
    if value.dim() == 0:
        digest.update(value.cpu().numpy().tobytes())
        return
    row_bytes = max(1, value[:1].numel() * value.element_size())
    step = max(1, chunk_bytes // row_bytes)
    for start in range(0, value.shape[0], step):
        digest.update(value[start : start + step].cpu().contiguous().numpy().tobytes())


def _fresh_state(cfg: TrainConfig, data: Dataset, dev: torch.device) -> TrainingState:
    """The training state as the first epoch of a run sees it."""
    seed_everything(cfg.seed)
    model = build_model(cfg, len(data.visual_names), len(data.acoustic_names)).to(dev)
    return TrainingState(model, make_optimiser(model, cfg), torch.Generator().manual_seed(cfg.seed))


def _resume_or_start(
    path: Path, fingerprint: str, cfg: TrainConfig, data: Dataset, dev: torch.device
) -> TrainingState:
    """The state saved in ``path`` when it belongs to this run and loads, else a fresh one."""
    state = _fresh_state(cfg, data, dev)
    saved = load_checkpoint(path, fingerprint)
    if saved is None:
        return state
    try:
        state.restore(saved, dev)
    except (KeyError, IndexError, AttributeError, RuntimeError, TypeError, ValueError) as exc:
        print(f"{path}: cannot be resumed ({exc}); training from the start", file=sys.stderr)
        # A failed load may have changed some tensors: start from fresh objects.
        return _fresh_state(cfg, data, dev)
    print(f"resuming {_where(state)} from {path}", file=sys.stderr)
    return state


def _where(state: TrainingState) -> str:
    """Where a resumed run goes on: after an epoch, or at a clip of one of its stages."""
    if state.progress is None:
        return f"after epoch {state.epoch}"
    stages = state.opt.stages
    n = len(state.progress.order) // len(stages)
    stage, clip = divmod(state.progress.next_start, n)
    named = f", stage {stages[stage]}," if len(stages) > 1 else ""
    return f"in epoch {state.epoch + 1}{named} at clip {clip} of {n}"


def train_run(
    data: Dataset,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    device: str = "cpu",
) -> dict:
    """Train one seed of one variant and write its run directory: the run files of
    :func:`~thne.runs.save_run` (best-validation weights in ``model.safetensors``),
    ``history.tsv``, ``valid_metrics.json`` and the test ``predictions.tsv``.

    Resumes from ``checkpoint.pt`` in ``out_dir`` when one written for the same config and data
    is there. Checkpoints are written every ``cfg.checkpoint_every_s`` seconds, and on SIGTERM
    or SIGINT, after which :class:`TrainingStopped` (a ``SystemExit``) is raised. Returns the
    validation metrics of the chosen epoch. Test metrics are the evaluate stage's job
    (``thne evaluate``), computed from ``predictions.tsv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    fingerprint = run_fingerprint(cfg, data)
    # Every split is moved to the device once; batches are slices of it. The dataset then holds
    # the moved splits, so the host copies are freed (MOSEI's are gigabytes). Splits that
    # load_dataset put on the device already stay as they are.
    data.splits.update({s: t.to(dev) for s, t in data.splits.items()})
    train, valid, test = (data.splits[s] for s in ("train", "valid", "test"))
    state = _resume_or_start(out / CHECKPOINT, fingerprint, cfg, data, dev)

    with StopSignals() as stop:
        saver = Checkpointer(out / CHECKPOINT, fingerprint, cfg.checkpoint_every_s, stop, dev)
        for epoch in range(state.epoch + 1, cfg.max_epochs + 1):
            if state.patience_spent(cfg.patience):
                break
            t0 = time.perf_counter()
            state.keep_best()
            while True:
                state.progress = train_epoch(
                    state.model, train, state.opt, cfg, state.gen, dev, state.progress,
                    saver.due_mid_epoch,
                )  # fmt: skip
                if state.progress.finished:
                    break
                saver.save_then_stop_if_asked(state, due=True)
            losses = state.progress.means()
            valid_losses, valid_pred = evaluate(state.model, valid, cfg, dev)
            metrics = selection_metrics(valid_pred)
            if not np.isfinite(metrics["mae"]):
                raise FloatingPointError(
                    f"training diverged: validation MAE is {metrics['mae']} at epoch {epoch}"
                )
            improved = state.end_epoch(epoch, losses, valid_losses, metrics)
            print(
                f"epoch {epoch:3d}  train loss {losses['total']:.4f}  valid mae "
                f"{metrics['mae']:.4f}{'  *' if improved else ''}  "
                f"({time.perf_counter() - t0:.1f}s)",
                file=sys.stderr,
                flush=True,
            )
            saver.save_then_stop_if_asked(state, saver.due_at_epoch_end())
        # A signal that came after the last epoch's check.
        saver.save_then_stop_if_asked(state, due=False)

    best = state.best_state()
    model = state.model
    model.load_state_dict(best)
    _, valid_pred = evaluate(model, valid, cfg, dev)
    # The test split is looked at only here, with the weights chosen on validation.
    _, test_pred = evaluate(model, test, cfg, dev)
    valid_metrics = selection_metrics(valid_pred)
    warning = constant_warning(test_pred["prediction"], test_pred["label"])
    if warning is not None:
        print(
            f"warning: epoch {state.best_epoch}, chosen on validation MAE, gives {warning}",
            file=sys.stderr,
            flush=True,
        )
    save_run(
        out,
        best,
        cfg,
        state.best_epoch,
        data.visual_norm,
        data.acoustic_norm,
        data.visual_names,
        data.acoustic_names,
        data.provenance,
        precision(cfg, dev),
    )
    hist = pd.DataFrame(state.history)
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
        "best_epoch": state.best_epoch,
        "epochs": int(hist["epoch"].max()),
        "n_clips": {s: len(t) for s, t in data.splits.items()},
        "left_out": data.dropped,
    }
    write_json(out / "valid_metrics.json", {**info, **valid_metrics})
    # Written last: until here a rerun can still resume.
    (out / CHECKPOINT).unlink(missing_ok=True)
    return valid_metrics
