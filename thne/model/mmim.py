"""MMIM, MultiModal InfoMax (Han, Chen and Poria, EMNLP 2021, arXiv 2109.00412): the model
t-HNE builds on, as a baseline on the same features, splits, seeds and checkpoint rule.

Reading guide, top to bottom: the variational q(y|x) of MMIM's inter-modality (input-level)
BA bound, the entropy estimate H(Y) with its memory of past batches, the model itself
(modality encoding, fusion, fusion-level CPC) and its losses (L_task, L_CPC, L_BA, L_main).
MMIM's two-stage training is ``thne/train/mmim_optimiser.py``.

How equations are marked: each mark names the MMIM quantity it computes (I_BA, q(y|x),
H(Y), L_CPC, L_main) and, where t-HNE's paper writes the same equation, gives its t-HNE
number (Eq. 1 encoders, Eq. 3 BA bound, Eq. 6-7 CPC score and NCE loss, Eq. 8 task loss).
MMIM's own equation numbers are not given: they have not been checked against the MMIM
paper's method section.

What is shared with t-HNE, and why:
- The encoders (BERT [CLS], unidirectional LSTMs over the visual and acoustic sequences) and
  the CPC heads are t-HNE's layers (``thne/model/thne.py``), used as parts of this model, which
  is t-HNE with DeNo1 and DeNo2 off: no text-guided attention, F = FN(h_t, h_v, h_a). The fusion
  network, regression head and initialisation are MMIM's own (below).
- Fusion-level CPC between F and h_t, h_v, h_a uses t-HNE's CPC head and score (t-HNE Eq. 6),
  its InfoNCE taken as MMIM's code takes it (below); MMIM also predicts h_t from F, t-HNE
  does not.

Where MMIM is open to reading we follow its public code (declare-lab/Multimodal-Infomax,
``src/modules/encoders.py`` and ``src/solver.py``), which produced its published numbers:
- log q(y|x) is the Gaussian's exponent alone, -1/2 sum_j (y_j - mu_j)^2 / sigma_j^2, without
  the log-variance term and the constant. Fitting q on it in stage one raises the variance
  without bound, so in stage two this term barely pulls on the encoders. The full
  log-density, log-variance included, was thne's first reading: there q sharpens epoch after
  epoch, its pull on the text encoder grows to several times the task's, and the predictions
  collapse to the training mean (benchmarks/mmim_terms.py measures it).
- H(Y): Y is first projected to a quarter of its size (linear, then tanh; the projection
  keeps its initial weights: no stage trains it). The samples of each sentiment sign (labels
  > 0 and < 0; label 0 is in neither) of the current batch and of the last ``memory``
  training batches (detached; 1 in the public code) give a Gaussian each, and
  H(Y) = 1/4 (log det Sigma_pos + log det Sigma_neg), Sigma the maximum-likelihood
  covariance: equal weights, constants dropped. The memory is emptied at the start of each
  epoch, and the term is used once the memory is full. A batch whose components have no
  more samples than the projection has dimensions (a singular covariance, where the public
  code would produce -inf) has no entropy term.
- The config's (alpha, beta) are applied as MMIM's public code applies them: alpha weights
  the CPC terms, beta the BA bound (L_main in ``total_loss``). In t-HNE's Eq. 9 alpha
  weights its MI terms and beta its CPC terms.
- CPC's InfoNCE picks, for each h_m^i, its own F^i among the batch's predictions (the public
  code's softmax runs over the fused vectors); t-HNE's Eq. 7 picks h_m^i for each F^i.

- The fusion and regression network is MMIM's (its ``SubNet``): F = tanh(W_2 tanh(W_1 x)),
  prediction W_3 F, with dropout on x; and every weight matrix outside the text encoder is
  initialised Xavier-normal, as its ``Solver`` does. With t-HNE's ReLU fusion and regressor at
  PyTorch's default initialisation the predictions start with a spread of about 0.005 of the
  labels' and need several epochs to leave it, so on small training sets validation MAE kept
  an epoch whose predictions were a constant (thne's issue 27 measured it on the demo).

Where this still differs from MMIM's public code, for whoever compares numbers with it:
- the encoders and CPC predictors are t-HNE's (above): its code has a linear layer after each
  LSTM and a one-layer CPC predictor;
- its first stage sees only half the training batches on MOSEI, and back-propagates into the
  encoders, whose gradients then count in its clip of the estimators' step; its clips span
  all parameters in both stages;
- under its pinned torch 1.7, gradients are zeroed, not freed, so weight decay keeps moving
  the entropy projection in stage one; here it stays at its initialisation;
- its optimisers use weight decay 1e-4 and a gradient clip of 1.0 by default; here both are
  the dataset's ``weight_decay`` and ``grad_clip``, shared with t-HNE;
- it starts the entropy term one batch later in each epoch (from the third batch).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from thne.model.thne import (
    CPCHead,
    Output,
    SequenceEncoder,
    Variant,
    fusion_network,
    info_nce,
    regress,
)

# MMIM's parts as t-HNE's switches name them (TrainConfig checks an MMIM config against
# them): no text-guided attention, no DeNo2 NCE, CPC on.
MMIM_SKELETON = Variant(deno1=False, deno2=False, recovery=True)


class GaussianEstimator(nn.Module):
    """MMIM's variational q(y|x) of the BA bound: N(y | mu(x), diag sigma^2(x)), mean and
    log-variance from two MLPs; and the fixed projection of y its entropy estimate uses."""

    def __init__(self, d_x: int, d_y: int) -> None:
        super().__init__()
        self.mu = nn.Sequential(nn.Linear(d_x, d_y), nn.ReLU(), nn.Linear(d_y, d_y))
        self.logvar = nn.Sequential(nn.Linear(d_x, d_y), nn.ReLU(), nn.Linear(d_y, d_y))
        # Never trained (MMIM's entropy_prj): the entropy is taken in a fixed random frame.
        self.project = nn.Sequential(nn.Linear(d_y, max(d_y // 4, 1)), nn.Tanh())
        self.project.requires_grad_(False)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MMIM's log q(y_i | x_i) for each sample i: -1/2 sum_j (y_j - mu_j)^2 / sigma_j^2."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x, y = x.float(), y.float()
            mu, logvar = self.mu(x), self.logvar(x)
            return -0.5 * ((y - mu) ** 2 / logvar.exp()).sum(-1)

    def variance(self, x: torch.Tensor) -> torch.Tensor:
        """sigma^2(x), q's variance in each dimension."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.logvar(x.float()).exp()


def log_det_covariance(samples: torch.Tensor) -> torch.Tensor:
    """log det of the maximum-likelihood covariance of ``samples`` [n, k], in float32 even
    under autocast (a bf16 covariance would make log det meaningless)."""
    with torch.autocast(device_type=samples.device.type, enabled=False):
        x = samples if samples.dtype == torch.float64 else samples.float()
        centred = x - x.mean(dim=0, keepdim=True)
        return torch.logdet(centred.T @ centred / x.shape[0])


def entropy_estimate(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor | None:
    """MMIM's H(Y) from the projected samples of each sentiment sign:
    1/4 (log det Sigma_pos + log det Sigma_neg). None where a component has no more samples
    than dimensions, or a covariance is singular all the same."""
    if min(pos.shape[0], neg.shape[0]) <= pos.shape[1]:
        return None
    h = 0.25 * (log_det_covariance(pos) + log_det_covariance(neg))
    return h if bool(torch.isfinite(h)) else None


class EntropyMemory:
    """MMIM's history for H(Y): for each modality pair, the projected positive and negative
    samples of the last ``size`` training batches, detached, oldest dropped first. A fresh
    memory starts each epoch.

    The history is kept in ``batches``, a plain dict of lists of tensor pairs, given or new:
    training keeps it in its epoch's progress, which a checkpoint saves with a paused epoch."""

    def __init__(
        self, size: int, batches: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] | None = None
    ) -> None:
        if size < 1:
            raise ValueError(f"memory size must be >= 1 batch, got {size}")
        self.size = size
        self.batches = {} if batches is None else batches

    @staticmethod
    def split(y: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of positive and of negative sentiment; label 0 is in neither."""
        return y[label > 0], y[label < 0]

    def full(self, key: str) -> bool:
        return len(self.batches.get(key, ())) == self.size

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
        pos, neg = self.split(y.detach().float(), label)
        kept = self.batches.setdefault(key, [])
        kept.append((pos, neg))
        del kept[: -self.size]


class MMIM(nn.Module):
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
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        # The layers are made in the order, and with the random draws, of the former MMIM, a
        # subclass of THNE that replaced some of t-HNE's layers after making them: the same
        # seed then gives the same initial weights, and earlier runs can be reproduced.
        self.text_encoder = text_encoder
        self.visual_encoder = SequenceEncoder(visual_dim, visual_hidden)
        self.acoustic_encoder = SequenceEncoder(acoustic_dim, acoustic_hidden)
        # CPC between F and h_v, h_a (below: h_t), with t-HNE's head.
        self.cpc_v = CPCHead(fusion_dim, visual_hidden)
        self.cpc_a = CPCHead(fusion_dim, acoustic_hidden)
        fusion_in = d_t + visual_hidden + acoustic_hidden
        _draw_replaced_layers(fusion_in, fusion_dim, d_t)
        cpc_t = CPCHead(fusion_dim, d_t)
        # MMIM's fusion and regression network (its public code's SubNet): two tanh layers
        # give F, a linear layer the prediction. t-HNE's ReLU stack, left at PyTorch's default
        # initialisation, starts with predictions that spread about 0.005 of the labels' on the
        # demo and stay near-constant for several epochs; MMIM's does not (see initialise). Its
        # hidden layer is fusion_dim wide, as MMIM's (d_prjh).
        self.fusion = fusion_network(fusion_in, fusion_dim, fusion_dim, dropout, nn.Tanh)
        self.regressor = nn.Linear(fusion_dim, 1)
        # MMIM trains its own F -> h_t CPC head, so it needs no s_ft probe as t-HNE does.
        self.cpc_t = cpc_t
        # The MI estimators: the only parameters of the first optimisation stage.
        self.mi_tv = GaussianEstimator(d_t, visual_hidden)
        self.mi_ta = GaussianEstimator(d_t, acoustic_hidden)
        self.initialise()

    def initialise(self) -> None:
        """Every weight matrix outside the text encoder Xavier-normal, biases as built: MMIM's
        public code (``Solver.__init__``) does this to its LSTMs, fusion network, CPC heads and
        MI estimators alike."""
        for name, param in self.named_parameters():
            if not name.startswith("text_encoder.") and param.dim() > 1:
                nn.init.xavier_normal_(param)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        visual: torch.Tensor,
        visual_len: torch.Tensor,
        acoustic: torch.Tensor,
        acoustic_len: torch.Tensor,
    ) -> Output:
        # t-HNE's Eq. 1: the text encoder's [CLS] vector, the LSTMs' last states.
        h_t = self.text_encoder(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state[:, 0]
        _, h_v = self.visual_encoder(visual, visual_len)
        _, h_a = self.acoustic_encoder(acoustic, acoustic_len)
        fused = self.fusion(torch.cat([h_t, h_v, h_a], dim=-1))  # F = FN(h_t, h_v, h_a)
        # Without attention, h_{m<-t} is h_m, as in t-HNE with DeNo1 off.
        return Output(
            pred=regress(self.regressor, fused),
            h_t=h_t,
            fused=fused,
            h_v=h_v,
            h_a=h_a,
            h_vt=h_v,
            h_at=h_a,
        )

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
        memory, full: without one (evaluation) they are left out."""
        # L_task: the MAE of the prediction (t-HNE Eq. 8).
        terms = {"task": F.l1_loss(out.pred.float(), label.float())}
        # L_CPC: for each h_m^i, pick its own F^i among the batch's (MMIM's public code; t-HNE
        # Eq. 6-7's score, the InfoNCE taken the other way).
        terms["l_ft"] = info_nce(self.cpc_t.logits(out.fused, out.h_t).T)
        terms["l_fv"] = info_nce(self.cpc_v.logits(out.fused, out.h_v).T)
        terms["l_fa"] = info_nce(self.cpc_a.logits(out.fused, out.h_a).T)
        # L_BA: I_BA = E log q(y|x) + H(Y) (t-HNE Eq. 3), for (t, v) and (t, a).
        terms.update(self.log_likelihoods(out))
        if memory is not None:
            for pair, est, y in (("tv", self.mi_tv, out.h_v), ("ta", self.mi_ta, out.h_a)):
                if not memory.full(pair):
                    continue
                h = entropy_estimate(*memory.components(pair, est.project(y.float()), label))
                if h is not None:
                    terms[f"h_{pair}"] = h
        return terms

    def remember(self, out: Output, label: torch.Tensor, memory: EntropyMemory) -> None:
        """Store this batch's projected Y samples for the next batches' entropy estimates."""
        with torch.no_grad():
            memory.push("tv", self.mi_tv.project(out.h_v.float()), label)
            memory.push("ta", self.mi_ta.project(out.h_a.float()), label)

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


def _draw_replaced_layers(fusion_in: int, fusion_dim: int, d_t: int) -> None:
    """Make, and drop, the layers the former MMIM had from THNE before replacing them: t-HNE's
    ReLU fusion network (hidden width 256) and regression MLP, and its s_ft probe. Their
    initial weights took draws from torch's generator between the CPC heads and the layers
    made next, whose biases (the weights are set again by MMIM.initialise) depend on it."""
    fusion_network(fusion_in, 256, fusion_dim, 0.0, nn.ReLU)
    nn.Linear(fusion_dim, fusion_dim // 2)
    nn.Linear(fusion_dim // 2, 1)
    CPCHead(fusion_dim, d_t)
