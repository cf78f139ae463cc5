"""MMIM, MultiModal InfoMax (Han, Chen and Poria, EMNLP 2021, arXiv 2109.00412): the model
t-HNE builds on, as a baseline on the same features, splits, seeds and checkpoint rule.

Reading guide, top to bottom: the variational q(y|x) of MMIM's inter-modality (input-level)
BA bound, the entropy estimate H(Y) with its memory of past batches, the model itself
(modality encoding, fusion, fusion-level CPC) and its losses (L_task, L_CPC, L_BA, L_main).
MMIM's two-stage training lives in ``thne/train/two_stage.py``.

How equations are marked: each mark names the MMIM quantity it computes (I_BA, q(y|x),
H(Y), L_CPC, L_main) and, where t-HNE's paper writes the same equation, gives its t-HNE
number (Eq. 1 encoders, Eq. 3 BA bound, Eq. 6-7 CPC score and NCE loss, Eq. 8 task loss).
MMIM's own equation numbers are not given: they have not been checked against the MMIM
paper's method section.

What is shared with t-HNE, and why:
- The encoders (BERT [CLS], unidirectional LSTMs over the visual and acoustic sequences), the
  fusion network, the regression head and the CPC head are t-HNE's classes (``THNE`` with
  DeNo1 and DeNo2 off is MMIM's skeleton: no text-guided attention, F = FN(h_t, h_v, h_a)), so
  a difference between the two models comes from their objectives, not from other layers.
- Fusion-level CPC between F and h_t, h_v, h_a uses t-HNE's CPC head and InfoNCE (t-HNE Eq. 6-7
  has the same form); MMIM also predicts h_t from F, t-HNE does not.

Where MMIM is open to reading we read it as follows:
- log q(y|x) is the full diagonal-Gaussian log-density, log-variance term included. Without
  it, fitting q on its likelihood would drive the variance up without bound.
- H(Y): Y is modelled as a two-component Gaussian mixture, one component per sentiment sign
  (labels > 0 and < 0; clips labelled exactly 0 belong to neither). Each component's mean and
  covariance are the sample estimates over the current batch and a memory of the last
  ``memory`` training batches, across epoch boundaries (detached; only the current batch
  carries gradient). H(Y) is the upper bound of a mixture's entropy,
  sum_c w_c (-log w_c + H(N(mu_c, Sigma_c))), with w_c the share of samples in component c.
  A component is estimated only from more samples than Y has dimensions (else its
  covariance is singular); a small ridge keeps log det finite.
- The config's (alpha, beta) are applied as MMIM's public code applies them: alpha weights
  the CPC terms, beta the BA bound (L_main in ``total_loss``). In t-HNE's Eq. 9 alpha
  weights its MI terms and beta its CPC terms.

Where this differs from MMIM's public code (declare-lab/Multimodal-Infomax), for whoever
compares numbers with it:
- its log q(y|x) keeps only the squared error over the variance (no log-variance term);
- its H(Y) is taken on a projection of Y to a quarter of its size (linear, tanh) that stays
  at its initialisation (it sits with the estimators, whose stage never uses it), as
  1/4 (log det Sigma_pos + log det Sigma_neg): equal component weights, constants dropped,
  the current batch plus one past batch, the memory emptied at each epoch;
- its first stage sees only half the training batches on MOSEI;
- its optimisers use weight decay 1e-4 and a gradient clip of 1.0 by default; here both are
  the dataset's ``weight_decay`` and ``grad_clip``, shared with t-HNE.
"""

from __future__ import annotations

import math
from collections import deque

import torch
import torch.nn.functional as F
from torch import nn

from thne.model.thne import THNE, CPCHead, Output, Variant, info_nce

# MMIM as switches over t-HNE's model: no text-guided attention, no DeNo2 NCE, CPC on.
MMIM_SKELETON = Variant(deno1=False, deno2=False, recovery=True)
# Added to each component's covariance: log det stays finite when a dimension barely varies.
RIDGE = 1e-4
LOG_2PI_E = math.log(2 * math.pi * math.e)


class GaussianEstimator(nn.Module):
    """MMIM's variational q(y|x) of the BA bound: N(y | mu(x), diag sigma^2(x)), mean and
    log-variance from two MLPs."""

    def __init__(self, d_x: int, d_y: int) -> None:
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(d_x, d_y), nn.ReLU(), nn.Linear(d_y, d_y))
        self.logvar = nn.Sequential(nn.Linear(d_x, d_y), nn.ReLU(), nn.Linear(d_y, d_y))

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """log q(y_i | x_i) for each sample i:
        -1/2 sum_j [ (y_j - mu_j)^2 / sigma_j^2 + log sigma_j^2 + log 2 pi ]."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x, y = x.float(), y.float()
            mu, logvar = self.mu(x), self.logvar(x)
            return -0.5 * ((y - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(samples: torch.Tensor) -> torch.Tensor:
    """Entropy of the Gaussian fitted to ``samples`` [n, k]: 1/2 (k log 2 pi e + log det Sigma),
    Sigma the maximum-likelihood covariance (plus RIDGE on its diagonal)."""
    n, k = samples.shape
    # float32 even under autocast: a bf16 covariance would make log det meaningless.
    with torch.autocast(device_type=samples.device.type, enabled=False):
        x = samples if samples.dtype == torch.float64 else samples.float()
        centred = x - x.mean(dim=0, keepdim=True)
        cov = centred.T @ centred / n + RIDGE * torch.eye(k, dtype=x.dtype, device=x.device)
        return 0.5 * (k * LOG_2PI_E + torch.logdet(cov))


def mixture_entropy(components: list[torch.Tensor]) -> torch.Tensor | None:
    """MMIM's entropy estimate: H(Y) of a Gaussian mixture, bounded above by
    sum_c w_c (-log w_c + H(N(mu_c, Sigma_c))), w_c = n_c / sum n. Only components with more
    samples than dimensions take part; None when none has enough."""
    usable = [c for c in components if c.shape[0] > c.shape[1]]
    if not usable:
        return None
    total = sum(c.shape[0] for c in usable)
    h = usable[0].new_zeros(())
    for c in usable:
        w = c.shape[0] / total
        h = h + w * (-math.log(w) + gaussian_entropy(c))
    return h


class EntropyMemory:
    """MMIM's history of embeddings for H(Y): for each modality pair, the positive and negative
    samples of Y from the last ``size`` training batches, detached, oldest dropped first."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"memory size must be >= 0 batches, got {size}")
        self.size = size
        self.batches: dict[str, deque[tuple[torch.Tensor, torch.Tensor]]] = {}

    @staticmethod
    def split(y: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of positive and of negative sentiment; label 0 is in neither."""
        return y[label > 0], y[label < 0]

    def components(
        self, key: str, y: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each component's samples: the remembered batches' and the current batch's."""
        pos, neg = self.split(y.float(), label)
        past = self.batches.get(key, ())
        return (
            torch.cat([*(p for p, _ in past), pos]),
            torch.cat([*(n for _, n in past), neg]),
        )

    def push(self, key: str, y: torch.Tensor, label: torch.Tensor) -> None:
        if self.size == 0:
            return
        pos, neg = self.split(y.detach().float(), label)
        self.batches.setdefault(key, deque(maxlen=self.size)).append((pos, neg))

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the size and the remembered samples (on the CPU)."""
        return {
            "size": self.size,
            "batches": {k: [(p.cpu(), n.cpu()) for p, n in q] for k, q in self.batches.items()},
        }

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        if state["size"] != self.size:
            raise ValueError(f"memory of {state['size']} batches, not {self.size}")
        self.batches = {
            k: deque(((p.to(device), n.to(device)) for p, n in q), maxlen=self.size)
            for k, q in state["batches"].items()
        }


class MMIM(THNE):
    """MMIM: modality encoding and fusion (t-HNE's Eq. 1 encoders, without attention), BA
    bounds between text and each of visual and acoustic, CPC between F and each of h_t, h_v,
    h_a."""

    def __init__(
        self,
        text_encoder: nn.Module,
        d_t: int,
        visual_dim: int,
        acoustic_dim: int,
        *,
        visual_hidden: int = 32,
        acoustic_hidden: int = 32,
        fusion_dim: int = 128,
        fusion_hidden: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(
            text_encoder,
            d_t,
            visual_dim,
            acoustic_dim,
            visual_hidden=visual_hidden,
            acoustic_hidden=acoustic_hidden,
            fusion_dim=fusion_dim,
            fusion_hidden=fusion_hidden,
            dropout=dropout,
            variant=MMIM_SKELETON,
        )
        # MMIM trains its own F -> h_t CPC head, so t-HNE's detached s_ft probe is not needed.
        del self.cpc_t_probe
        self.cpc_t = CPCHead(fusion_dim, d_t)
        # The MI estimators: the only parameters of the first optimisation stage.
        self.mi_tv = GaussianEstimator(d_t, visual_hidden)
        self.mi_ta = GaussianEstimator(d_t, acoustic_hidden)

    ESTIMATORS = ("mi_tv", "mi_ta")

    def is_estimator(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to q(y|x) (stage one) rather than the network."""
        return name.split(".", 1)[0] in self.ESTIMATORS

    def log_likelihoods(self, out: Output) -> dict[str, torch.Tensor]:
        """E log q(y|x) over the batch for (x, y) = (h_t, h_v) and (h_t, h_a): BA's first term."""
        return {
            "lld_tv": self.mi_tv.log_likelihood(out.h_t, out.h_v).mean(),
            "lld_ta": self.mi_ta.log_likelihood(out.h_t, out.h_a).mean(),
        }

    def estimator_loss(self, out: Output) -> torch.Tensor:
        """MMIM's first training stage: -E log q(y|x), the negative of I_BA's first term, on the
        batch's (detached) pairs; it trains the estimators only."""
        detached = Output(
            pred=out.pred,
            h_t=out.h_t.detach(),
            fused=out.fused,
            h_v=out.h_v.detach(),
            h_a=out.h_a.detach(),
        )
        lld = self.log_likelihoods(detached)
        return -(lld["lld_tv"] + lld["lld_ta"])

    def losses(
        self, out: Output, label: torch.Tensor, memory: EntropyMemory | None = None
    ) -> dict[str, torch.Tensor]:
        """Every term of MMIM's main loss L_main. The entropy terms h_tv, h_ta need the training
        memory: without one (evaluation) they are left out."""
        # L_task: the MAE of the prediction (t-HNE Eq. 8).
        terms = {"task": F.l1_loss(out.pred.float(), label.float())}
        # L_CPC: for each F^i, pick its own h_m^i among the batch's (t-HNE Eq. 6-7's form).
        terms["l_ft"] = info_nce(self.cpc_t.logits(out.fused, out.h_t))
        terms["l_fv"] = info_nce(self.cpc_v.logits(out.fused, out.h_v))
        terms["l_fa"] = info_nce(self.cpc_a.logits(out.fused, out.h_a))
        # L_BA: I_BA = E log q(y|x) + H(Y) (t-HNE Eq. 3), for (t, v) and (t, a).
        terms.update(self.log_likelihoods(out))
        if memory is not None:
            for pair, y in (("tv", out.h_v), ("ta", out.h_a)):
                h = mixture_entropy(list(memory.components(pair, y, label)))
                if h is not None:
                    terms[f"h_{pair}"] = h
        return terms

    def remember(self, out: Output, label: torch.Tensor, memory: EntropyMemory) -> None:
        """Store this batch's Y samples for the next batches' entropy estimates."""
        memory.push("tv", out.h_v, label)
        memory.push("ta", out.h_a, label)

    def total_loss(self, terms: dict[str, torch.Tensor], alpha: float, beta: float) -> torch.Tensor:
        """MMIM's L_main = L_task + alpha L_CPC - beta L_BA, with L_CPC = l_ft + l_fv + l_fa
        and L_BA = sum over (t, v), (t, a) of E log q(y|x) + H(Y), over the terms present."""
        loss = terms["task"]
        for name in ("l_ft", "l_fv", "l_fa"):
            loss = loss + alpha * terms[name]
        for name in ("lld_tv", "lld_ta", "h_tv", "h_ta"):
            if name in terms:
                loss = loss - beta * terms[name]
        return loss

    @torch.no_grad()
    def cpc_scores(self, out: Output) -> dict[str, torch.Tensor]:
        """The CPC score s(F^i, h_m^i) (t-HNE Eq. 6) for each clip, all three from trained heads."""
        return {
            "s_ft": self.cpc_t.own_pair(out.fused, out.h_t).exp(),
            "s_fv": self.cpc_v.own_pair(out.fused, out.h_v).exp(),
            "s_fa": self.cpc_a.own_pair(out.fused, out.h_a).exp(),
        }
