"""The training loop: plain PyTorch, one epoch after another, model picked on validation MAE.

The test split is evaluated once, with the best-validation weights, after training ends.

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
from thne.model.thne import THNE
from thne.runs import save_run
from thne.train.checkpoint import (
    CHECKPOINT,
    Checkpointer,
    EpochProgress,
    StopSignals,
    TrainingState,
    load_checkpoint,
)
from thne.train.config import TrainConfig
from thne.train.data import Dataset, SplitTensors
from thne.train.forward import autocast, model_inputs, precision

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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        loss = model.total_loss(terms, cfg.alpha, cfg.beta)
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


def _fresh_state(cfg: TrainConfig, data: Dataset, dev: torch.device) -> TrainingState:
    """The training state as the first epoch of a run sees it."""
    seed_everything(cfg.seed)
    model = build_model(cfg, len(data.visual_names), len(data.acoustic_names)).to(dev)
    return TrainingState(model, make_optimizer(model, cfg), torch.Generator().manual_seed(cfg.seed))


def _resume_or_start(
    path: Path, fingerprint: str, cfg: TrainConfig, data: Dataset, dev: torch.device, n: int
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
    where = (
        f"in epoch {state.epoch + 1} at clip {state.progress.next_start} of {n}"
        if state.progress is not None
        else f"after epoch {state.epoch}"
    )
    print(f"resuming {where} from {path}", file=sys.stderr)
    return state


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
    # Taken while the splits are on the host: after the move it would copy them back.
    fingerprint = run_fingerprint(cfg, data)
    # Every split is moved to the device once; batches are slices of it. The dataset then holds
    # the moved splits, so the host copies are freed (MOSEI's are gigabytes).
    data.splits.update({s: t.to(dev) for s, t in data.splits.items()})
    train, valid, test = (data.splits[s] for s in ("train", "valid", "test"))
    state = _resume_or_start(out / CHECKPOINT, fingerprint, cfg, data, dev, len(train))

    with StopSignals() as stop:
        saver = Checkpointer(out / CHECKPOINT, fingerprint, cfg.checkpoint_every_s, stop, dev)
        for epoch in range(state.epoch + 1, cfg.max_epochs + 1):
            if state.patience_spent(cfg.patience):
                break
            t0 = time.perf_counter()
            state.keep_best()
            while True:
                result = train_epoch(
                    state.model, train, state.opt, cfg, state.gen, dev, state.progress,
                    saver.due_mid_epoch,
                )  # fmt: skip
                if not isinstance(result, EpochProgress):
                    break
                state.progress = result
                saver.save_then_stop_if_asked(state, due=True)
            valid_losses, valid_pred = evaluate(state.model, valid, cfg, dev)
            metrics = selection_metrics(valid_pred)
            if not np.isfinite(metrics["mae"]):
                raise FloatingPointError(
                    f"training diverged: validation MAE is {metrics['mae']} at epoch {epoch}"
                )
            improved = state.end_epoch(epoch, result, valid_losses, metrics)
            print(
                f"epoch {epoch:3d}  train loss {result['total']:.4f}  valid mae "
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
