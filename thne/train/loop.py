"""The training loop: plain PyTorch, one epoch after another, model picked on validation MAE.

The test split is evaluated once, with the best-validation weights, after training ends.

At the end of every epoch the whole training state (weights, optimiser, random generators,
history, best weights so far) is written atomically to ``checkpoint.pt`` in the run directory.
A run started again where one exists continues after its last finished epoch and, on CPU,
ends exactly as an uninterrupted run would. The checkpoint is removed when the run finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from thne.evaluate.metrics import regression_metrics
from thne.io import atomic_path, write_json
from thne.model.thne import THNE, total_loss
from thne.text.encoder import load_encoder
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_model(cfg: TrainConfig, data: Dataset) -> THNE:
    """t-HNE (one of its variants), or MMIM when ``cfg.model`` says so."""
    encoder, d_t = load_encoder(cfg.encoder)
    if cfg.model == "mmim":
        from thne.model.mmim import MMIM

        return MMIM(
            encoder,
            d_t,
            len(data.visual_names),
            len(data.acoustic_names),
            visual_hidden=cfg.visual_hidden,
            acoustic_hidden=cfg.acoustic_hidden,
            fusion_dim=cfg.fusion_dim,
            dropout=cfg.dropout,
        )
    return THNE(
        encoder,
        d_t,
        len(data.visual_names),
        len(data.acoustic_names),
        visual_hidden=cfg.visual_hidden,
        acoustic_hidden=cfg.acoustic_hidden,
        fusion_dim=cfg.fusion_dim,
        dropout=cfg.dropout,
        variant=cfg.components,
    )


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
) -> dict[str, float]:
    if cfg.model == "mmim":
        from thne.train import two_stage

        return two_stage.train_epoch(model, split, opt, cfg, gen, device)
    model.train()
    sums: dict[str, torch.Tensor] = {}
    # The permutation comes from a CPU generator, so the order is the same on every device.
    order = torch.randperm(len(split), generator=gen).to(device)
    for start in range(0, len(split), cfg.batch_size):
        batch = split.batch(order[start : start + cfg.batch_size])
        terms = train_step(model, batch, opt, cfg, device)
        n = batch["label"].shape[0]
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + v * n
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
    digest = hashlib.blake2b(json.dumps(asdict(cfg), sort_keys=True).encode())
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


def _fresh_start(
    cfg: TrainConfig, data: Dataset, dev: torch.device
) -> tuple[THNE, torch.optim.Optimizer, torch.Generator]:
    """Model, optimiser and batch-order generator as the first epoch of a run sees them."""
    seed_everything(cfg.seed)
    model = build_model(cfg, data).to(dev)
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
    is there. Returns the validation metrics of the chosen epoch. Test metrics are the evaluate
    stage's job (``thne evaluate``), computed from ``predictions.tsv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    model, opt, gen = _fresh_start(cfg, data, dev)
    # Every split is moved to the device once; batches are slices of it.
    train, valid, test = (data.splits[s].to(dev) for s in ("train", "valid", "test"))

    fingerprint = run_fingerprint(cfg, data)
    checkpoint = out / CHECKPOINT
    history: list[dict] = []
    best_mae, best_epoch, best_state, first_epoch = float("inf"), 0, None, 1
    state = _load_checkpoint(checkpoint, fingerprint)
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            _set_rng_state(state["rng"], gen, dev)
        except (KeyError, RuntimeError, ValueError) as exc:
            print(
                f"{checkpoint}: cannot be resumed ({exc}); training from the start", file=sys.stderr
            )
            # A failed load may have changed some tensors: start from fresh objects.
            model, opt, gen = _fresh_start(cfg, data, dev)
            state = None
    if state is not None:
        history, best_mae, best_epoch = state["history"], state["best_mae"], state["best_epoch"]
        # Saved without a copy when the last epoch was the best.
        best_state = (
            state["best_state"]
            if state["best_state"] is not None
            else {k: v.clone() for k, v in state["model"].items()}
        )
        first_epoch = state["epoch"] + 1
        print(f"resuming after epoch {state['epoch']} from {checkpoint}", file=sys.stderr)

    stopped = state is not None and state["epoch"] - best_epoch >= cfg.patience
    for epoch in range(first_epoch, cfg.max_epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        train_losses = train_epoch(model, train, opt, cfg, gen, dev)
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
            best_mae, best_epoch = valid_metrics["mae"], epoch
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        with atomic_path(checkpoint) as tmp:
            torch.save(
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "rng": _rng_state(gen, dev),
                    "history": history,
                    "best_mae": best_mae,
                    "best_epoch": best_epoch,
                    # The best weights are this epoch's when it improved: no second copy.
                    "best_state": None if improved else best_state,
                },
                tmp,
            )
        mark = "  *" if improved else ""
        print(
            f"epoch {epoch:3d}  train loss {train_losses['total']:.4f}  valid mae "
            f"{valid_metrics['mae']:.4f}{mark}  ({time.perf_counter() - t0:.1f}s)",
            file=sys.stderr,
            flush=True,
        )
        stopped = epoch - best_epoch >= cfg.patience

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
