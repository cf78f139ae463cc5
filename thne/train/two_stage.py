"""MMIM's two-stage optimisation, one epoch at a time (MMIM's training procedure; the MMIM
paper's equation and algorithm numbers are not given, see ``thne/model/mmim.py``).

Stage one fits the MI estimators q(y|x) on their likelihood, with their own optimiser, over
the training split; the encoders' outputs are detached, so nothing else moves. Stage two
trains the rest of the network on the task loss, the CPC terms and the BA lower bound with
another optimiser (two parameter groups, as t-HNE's: the text encoder at its own rate), over
the training split again; the estimators stay fixed there. The entropy estimate's memory of
past batches starts empty in each epoch's second stage, as in MMIM's public code.

Both optimisers travel together as :class:`TwoOptimizers`, whose state dict holds the two, so
a resumed run (MMIM checkpoints fall between epochs, where the memory is empty) continues
exactly where it stopped.
"""

from __future__ import annotations

import torch

from thne.model.mmim import MMIM, EntropyMemory
from thne.train.config import TrainConfig
from thne.train.data import SplitTensors
from thne.train.forward import autocast, model_inputs


class TwoOptimizers:
    """The main optimiser and the estimators' one, saved and restored as one (the training
    loop checkpoints whatever its optimiser's state dict holds)."""

    def __init__(self, main: torch.optim.Optimizer, estimator: torch.optim.Optimizer) -> None:
        self.main = main
        self.estimator = estimator

    def state_dict(self) -> dict:
        return {"main": self.main.state_dict(), "estimator": self.estimator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.main.load_state_dict(state["main"])
        self.estimator.load_state_dict(state["estimator"])


def new_memory(cfg: TrainConfig) -> EntropyMemory:
    """The entropy estimate's memory of ``cfg.mi_memory`` past batches, empty."""
    return EntropyMemory(cfg.mi_memory)


def make_optimizers(model: MMIM, cfg: TrainConfig) -> TwoOptimizers:
    """Adam for the estimators at ``mi_lr``; Adam for everything else, the text encoder at
    ``bert_lr`` and the rest at ``lr``. The two parameter sets are disjoint; the entropy
    projection, which no stage trains, is in neither."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    estimators = [p for n, p in named if model.is_estimator(n)]
    text = [p for n, p in named if n.startswith("text_encoder.")]
    rest = [p for n, p in named if not n.startswith("text_encoder.") and not model.is_estimator(n)]
    main = torch.optim.Adam(
        [{"params": text, "lr": cfg.bert_lr}, {"params": rest, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
        fused=True,
    )
    estimator = torch.optim.Adam(
        estimators, lr=cfg.mi_lr, weight_decay=cfg.weight_decay, fused=True
    )
    return TwoOptimizers(main, estimator)


def estimator_step(
    model: MMIM,
    batch: dict[str, torch.Tensor],
    opt: TwoOptimizers,
    cfg: TrainConfig,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Stage one on one batch: one step of the estimators on -E log q(y|x), the negative of
    the first term of I_BA (t-HNE Eq. 3). Returns the loss."""
    with torch.no_grad(), autocast(cfg, device or batch["label"].device):
        out = model(**model_inputs(batch))  # no graph through the encoders: they stay put
    loss = model.estimator_loss(out)
    opt.estimator.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(
        [p for g in opt.estimator.param_groups for p in g["params"]], cfg.grad_clip
    )
    opt.estimator.step()
    return loss.detach()


def main_step(
    model: MMIM,
    batch: dict[str, torch.Tensor],
    opt: TwoOptimizers,
    cfg: TrainConfig,
    memory: EntropyMemory,
    device: torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Stage two on one batch: one step of the network on MMIM's
    L_main = L_task + alpha L_CPC - beta L_BA (``MMIM.total_loss``); the batch then joins the
    entropy memory. Returns the loss terms and their weighted total (detached)."""
    with autocast(cfg, device or batch["label"].device):
        out = model(**model_inputs(batch))
        terms = model.losses(out, batch["label"], memory)
        loss = model.total_loss(terms, cfg.alpha, cfg.beta)
    opt.main.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for g in opt.main.param_groups for p in g["params"]]
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    opt.main.step()
    # The BA terms also left gradients on the estimators; stage one sets its own.
    opt.estimator.zero_grad(set_to_none=True)
    model.remember(out, batch["label"], memory)
    return {k: v.detach().float() for k, v in {**terms, "total": loss}.items()}


def train_epoch(
    model: MMIM,
    split: SplitTensors,
    opt: TwoOptimizers,
    cfg: TrainConfig,
    gen: torch.Generator,
    device: torch.device,
) -> dict[str, float]:
    """Stage one, then stage two, each over the whole training split in its own random order.
    Returns each term's mean over the clips of the batches that had it, and ``mi_nll``, the
    estimators' mean negative log-likelihood in stage one. The entropy memory starts empty."""
    model.train()
    n = len(split)
    nll = torch.zeros((), device=device)
    order = torch.randperm(n, generator=gen).to(device)
    for start in range(0, n, cfg.batch_size):
        batch = split.batch(order[start : start + cfg.batch_size])
        nll = nll + estimator_step(model, batch, opt, cfg, device) * batch["label"].shape[0]

    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    memory = new_memory(cfg)
    order = torch.randperm(n, generator=gen).to(device)
    for start in range(0, n, cfg.batch_size):
        batch = split.batch(order[start : start + cfg.batch_size])
        size = batch["label"].shape[0]
        for k, v in main_step(model, batch, opt, cfg, memory, device).items():
            sums[k] = sums.get(k, 0.0) + v * size
            counts[k] = counts.get(k, 0) + size
    # One device-to-host copy per term and epoch.
    return {"mi_nll": float(nll) / n, **{k: float(v) / counts[k] for k, v in sums.items()}}
