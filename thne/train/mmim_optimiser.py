"""MMIM's two-stage optimisation, one epoch at a time (MMIM's training procedure; the MMIM
paper's equation and algorithm numbers are not given, see ``thne/model/mmim.py``).

Stage one ("estimator") fits the MI estimators q(y|x) on their likelihood, with their own
optimiser, over the training split; the encoders' outputs are detached, so nothing else moves.
Stage two ("main") trains the rest of the network on the task loss, the CPC terms and the BA
lower bound with another optimiser (two parameter groups, as t-HNE's: the text encoder at its
own rate), over the training split again; the estimators stay fixed there. The entropy
estimate's memory of past batches is what stage two carries from batch to batch: it starts
empty in each epoch's second stage, as in MMIM's public code, and a checkpoint written inside
the stage holds it, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import torch

from thne.model.mmim import MMIM, EntropyMemory
from thne.train.config import TrainConfig
from thne.train.forward import autocast, model_inputs


class MMIMOptimiser:
    """MMIM's two optimisers and its two stages, through the interface of
    :class:`thne.train.optimiser.Optimiser`; the state dict holds both optimisers."""

    stages = ("estimator", "main")

    def __init__(self, model: MMIM, cfg: TrainConfig) -> None:
        """Adam for the estimators at ``mi_lr``; Adam for everything else, the text encoder at
        ``bert_lr`` and the rest at ``lr``. The two parameter sets are disjoint; the entropy
        projection, which no stage trains, is in neither."""
        self.model, self.cfg = model, cfg
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        estimators = [p for n, p in named if model.is_estimator(n)]
        text = [p for n, p in named if n.startswith("text_encoder.")]
        rest = [
            p for n, p in named if not n.startswith("text_encoder.") and not model.is_estimator(n)
        ]
        self.main = torch.optim.Adam(
            [{"params": text, "lr": cfg.bert_lr}, {"params": rest, "lr": cfg.lr}],
            weight_decay=cfg.weight_decay,
            fused=True,
        )
        self.estimator = torch.optim.Adam(
            estimators, lr=cfg.mi_lr, weight_decay=cfg.weight_decay, fused=True
        )

    def step(
        self, stage: str, batch: dict[str, torch.Tensor], carry: dict
    ) -> dict[str, torch.Tensor]:
        if stage == "estimator":
            return {"mi_nll": self.estimator_step(batch)}
        return self.main_step(batch, EntropyMemory(self.cfg.mi_memory, carry))

    def estimator_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Stage one on one batch: one step of the estimators on -E log q(y|x), the negative
        of the first term of I_BA (t-HNE Eq. 3). Returns the loss, ``mi_nll`` in the history."""
        model, cfg = self.model, self.cfg
        with torch.no_grad(), autocast(cfg, batch["label"].device):
            out = model(**model_inputs(batch))  # no graph through the encoders: they stay put
        loss = model.estimator_loss(out)
        self.estimator.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(
            [p for g in self.estimator.param_groups for p in g["params"]], cfg.grad_clip
        )
        self.estimator.step()
        return loss.detach().float()

    def main_step(
        self, batch: dict[str, torch.Tensor], memory: EntropyMemory
    ) -> dict[str, torch.Tensor]:
        """Stage two on one batch: one step of the network on MMIM's
        L_main = L_task + alpha L_CPC - beta L_BA (``MMIM.total_loss``); the batch then joins
        the entropy memory. Returns the loss terms and their weighted total (detached)."""
        model, cfg = self.model, self.cfg
        with autocast(cfg, batch["label"].device):
            out = model(**model_inputs(batch))
            terms = model.losses(out, batch["label"], memory)
            loss = model.total_loss(terms, cfg.alpha, cfg.beta)
        self.main.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for g in self.main.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        self.main.step()
        # The BA terms also left gradients on the estimators; stage one sets its own.
        self.estimator.zero_grad(set_to_none=True)
        model.remember(out, batch["label"], memory)
        return {k: v.detach().float() for k, v in {**terms, "total": loss}.items()}

    def state_dict(self) -> dict:
        return {"main": self.main.state_dict(), "estimator": self.estimator.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.main.load_state_dict(state["main"])
        self.estimator.load_state_dict(state["estimator"])
