"""t-HNE's optimisation, the paper's Algorithm 1: for each minibatch, compute L as Eq. 9 and
update all parameters in the model.

One stage per epoch. The optimiser is Adam with two parameter groups, the text encoder at
``bert_lr`` and the rest at ``lr`` (paper section 4, Hyperparameter Settings: 5e-5 for BERT
fine-tuning), and the gradients are clipped by their norm at ``grad_clip`` (5.0 there). The
s_ft probe (``thne/model/thne.py``) learns in the same step from its own loss, on detached
inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from thne.model.thne import THNE
from thne.train.config import TrainConfig
from thne.train.forward import autocast, model_inputs


def clip_grad_norms_(groups: Sequence[Sequence[torch.Tensor]], max_norm: float) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_(group, max_norm, foreach=True)`` for each group of
    parameters (on one device, of one dtype), each clipped by its own norm: the same numbers,
    from one ``torch._foreach_norm`` over all groups' gradients and one clip coefficient
    computation for all groups. Returns the groups' total norms before clipping."""
    grads = [[p.grad for p in group if p.grad is not None] for group in groups]
    flat = [g for group in grads for g in group]
    if not flat:
        return torch.zeros(len(grads))
    norms = torch.stack(torch._foreach_norm(flat))
    totals, start = [], 0
    for group in grads:
        totals.append(torch.linalg.vector_norm(norms[start : start + len(group)]))
        start += len(group)
    totals = torch.stack(totals)
    # clip_grad_norm_'s coefficient, for every group at once.
    coefficients = torch.clamp(max_norm / (totals + 1e-6), max=1.0)
    for group, coefficient in zip(grads, coefficients.unbind(), strict=True):
        if group:
            torch._foreach_mul_(group, coefficient)
    return totals


class THNEOptimiser:
    """Algorithm 1's update, through the interface of :class:`thne.train.optimiser.Optimiser`."""

    stages = ("train",)

    def __init__(self, model: THNE, cfg: TrainConfig) -> None:
        self.model, self.cfg = model, cfg
        named = list(model.named_parameters())
        text = [p for n, p in named if n.startswith("text_encoder.")]
        rest = [p for n, p in named if not n.startswith("text_encoder.")]
        self.adam = torch.optim.Adam(
            [{"params": text, "lr": cfg.bert_lr}, {"params": rest, "lr": cfg.lr}],
            weight_decay=cfg.weight_decay,
            # The fused kernel does the whole update in one pass: several times faster than the
            # per-tensor loop on CPU, where the encoder's update otherwise costs as much as its
            # backward pass.
            fused=True,
        )
        # The s_ft probe is clipped on its own: in a shared clip its gradient norm would scale
        # the model's gradients, and the probe must not change the model.
        self.probe = [p for n, p in named if n.startswith("cpc_t_probe.")]
        self.network = [p for n, p in named if not n.startswith("cpc_t_probe.")]

    def step(
        self, stage: str, batch: dict[str, torch.Tensor], carry: dict
    ) -> dict[str, torch.Tensor]:
        """One update on one batch; returns the loss terms of Eq. 9 and their weighted total
        (detached 0-d tensors, left on the device). t-HNE carries nothing between batches."""
        model, cfg = self.model, self.cfg
        with autocast(cfg, batch["label"].device):
            out = model(**model_inputs(batch))
            terms = model.losses(out, batch["label"])
            loss = model.total_loss(terms, cfg.alpha, cfg.beta)
            probe_loss = model.probe_loss(out)
        self.adam.zero_grad(set_to_none=True)
        (loss + probe_loss).backward()
        clip_grad_norms_((self.network, self.probe), cfg.grad_clip)
        self.adam.step()
        return {k: v.detach().float() for k, v in {**terms, "total": loss}.items()}

    def state_dict(self) -> dict:
        return self.adam.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.adam.load_state_dict(state)
