"""t-HNE: the text-guided Hierarchical Noise Eliminator (paper section 3), in one file.

Reading guide, top to bottom: modality encoders (Eq. 1), text-guided intra-modality denoising
(DeNo1, Eq. 2, and the residual form of Eq. 10), MI-based inter-modality denoising (DeNo2,
Eq. 4-5), fusion and regression, feature recovery (Re, Eq. 6-7), and the loss (Eq. 8-9).
Algorithm 1, the update that minimises it, is ``thne/train/thne_optimiser.py``.

Where the paper is ambiguous we read it as follows:
- Eq. 2 with one h_t and one h_m vector would be a softmax over a single entry, i.e. a no-op.
  We read it as attention over time: h_t W_m is the query, the visual or acoustic LSTM outputs
  over the clip's T steps are keys and values, padded steps are masked. h_{m<-t} is thus a
  text-guided summary of the sequence; h_m, the LSTM's last state, is the plain summary.
- Eq. 5 and Eq. 7 are read as InfoNCE: the positive pair is part of the denominator, as in the
  reference CPC code. Summing over negatives only would make the loss unbounded below.
  T_theta in Eq. 5 is exp of a critic MLP on the concatenated pair, so the ratio is a softmax.
- s_ft (paper Table 5) is not trained by the paper. We report it from a text CPC head fed with
  detached inputs: its loss trains only the head and cannot change the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thne.variants import LOSS_WEIGHTS, SHIPPED_VARIANTS


@dataclass(frozen=True)
class Variant:
    """Which parts of t-HNE are switched on (paper Table 4, Eq. 10, and a text-only baseline)."""

    deno1: bool = True  # Eq. 2: text-guided attention over the visual / acoustic sequence
    deno2: bool = True  # Eq. 5: NCE between h_t and h_{m<-t}
    recovery: bool = True  # Eq. 7: CPC between F and h_v, h_a
    residual: bool = False  # Eq. 10: add the plain h_m back after attention
    multimodal: bool = True  # False: BERT branch and regression head alone

    def __post_init__(self) -> None:
        if self.residual and not self.deno1:
            raise ValueError("residual (Eq. 10) adds h_m back after DeNo1's attention: needs deno1")
        if not self.multimodal and (self.deno1 or self.deno2 or self.recovery or self.residual):
            raise ValueError(
                "multimodal: false keeps the text branch alone, so deno1, deno2, recovery and "
                "residual must all be false"
            )


# The switches of the shipped t-HNE variants (thne/variants.py, where their loss weights are too).
VARIANTS: dict[str, Variant] = {
    name: Variant(**{k: v for k, v in entry.items() if k not in LOSS_WEIGHTS})
    for name, entry in SHIPPED_VARIANTS.items()
    if entry.get("model", "thne") == "thne"
}


@dataclass
class Output:
    pred: torch.Tensor  # [B]
    h_t: torch.Tensor  # [B, d_t]
    fused: torch.Tensor  # F, [B, fusion_dim]
    h_v: torch.Tensor | None = None  # pre-attention summaries, [B, d_v]
    h_a: torch.Tensor | None = None
    h_vt: torch.Tensor | None = None  # h_{v<-t}, [B, d_v]
    h_at: torch.Tensor | None = None
    attn_v: torch.Tensor | None = None  # attention weights over time, [B, T_v]
    attn_a: torch.Tensor | None = None


def padding(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T]: True at the steps past each clip's length, its padding."""
    return torch.arange(steps, device=lengths.device) >= lengths[:, None]


class SequenceEncoder(nn.Module):
    """Eq. 1 for m in {v, a}: a unidirectional LSTM over each clip's sequence, up to its length.

    The LSTM runs over the padded batch as it is. Its output at a step depends on the steps
    before it only, so up to each clip's length it is what the clip alone gives, and the output
    at the clip's last step is its last state. Packing the batch (``pack_padded_sequence``)
    computes the same with a sort, a dozen more operations and a copy of the lengths to the
    host, which waits for the GPU, per modality and step; and on the CPU a packed LSTM over
    clips of unequal lengths runs step by step: some 25,000 operations, ten times the time."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Always float32: CUDA autocast would run cuDNN's LSTM in float16 whatever dtype it was
        # asked for, and standardised features can exceed float16's range.
        with torch.autocast(device_type=x.device.type, enabled=False):
            out, _ = self.lstm(x.float())
        # A clip of no steps has its one zero step (the loaders pad it so): index 0, not -1.
        last = out[torch.arange(x.shape[0], device=x.device), lengths.clamp(min=1) - 1]
        # All steps [B, T, H], the padded ones run on over the padding (Eq. 2 gives them no
        # weight), and the last valid state [B, H].
        return out, last


class TextGuidedAttention(nn.Module):
    """Eq. 2: h_{m<-t} = softmax(h_t W_m H_m^T / sqrt(d_t)) H_m, over the clip's time steps,
    padded steps masked (``pad``, from :func:`padding`)."""

    def __init__(self, d_t: int, d_m: int) -> None:
        super().__init__()
        self.w_m = nn.Parameter(torch.empty(d_t, d_m))
        nn.init.xavier_uniform_(self.w_m)
        self.scale = 1.0 / math.sqrt(d_t)

    def forward(
        self, h_t: torch.Tensor, steps: torch.Tensor, pad: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        query = h_t @ self.w_m  # [B, d_m]
        # bmm rather than einsum: the same products, without einsum's permutes and reshapes.
        scores = torch.bmm(steps, query.unsqueeze(-1)).squeeze(-1) * self.scale  # [B, T]
        weights = scores.masked_fill(pad, float("-inf")).softmax(dim=-1)
        return torch.bmm(weights.unsqueeze(1), steps).squeeze(1), weights


class PairCritic(nn.Module):
    """log T_theta(y, x) of Eq. 4-5: an MLP on the concatenated pair, scored for all B x B pairs."""

    def __init__(self, d_x: int, d_y: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_x + d_y, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        pairs = torch.cat([x[:, None, :].expand(b, b, -1), y[None, :, :].expand(b, b, -1)], dim=-1)
        return self.net(pairs).squeeze(-1)  # [i, j]: x of sample i with y of sample j


def fusion_network(
    in_dim: int, hidden: int, out_dim: int, dropout: float, activation: type[nn.Module]
) -> nn.Sequential:
    """FN: dropout on the concatenated input, then two linear layers, each followed by
    ``activation``; the output is F."""
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(in_dim, hidden),
        activation(),
        nn.Linear(hidden, out_dim),
        activation(),
    )


def regress(regressor: nn.Module, fused: torch.Tensor) -> torch.Tensor:
    """The prediction from F, in float32 even under autocast: bf16 would round predictions to
    steps of 0.016 near 3, which moves clips across Acc-7 boundaries."""
    with torch.autocast(device_type=fused.device.type, enabled=False):
        return regressor(fused.float()).squeeze(-1)


def info_nce(logits: torch.Tensor) -> torch.Tensor:
    """-E_i log( exp(logits[i, i]) / sum_j exp(logits[i, j]) ): positives on the diagonal.

    Over the last two dimensions, so a stack of K [B, B] score matrices gives K losses in one
    pass: the cross-entropy with targets 0..B-1, without its target tensor."""
    return -logits.float().log_softmax(dim=-1).diagonal(dim1=-2, dim2=-1).mean(dim=-1)


class CPCHead(nn.Module):
    """G_phi of Eq. 6: predicts h_m from F; scores are cosines, s = exp(cos)."""

    def __init__(self, fusion_dim: int, d_m: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(fusion_dim, fusion_dim), nn.Tanh(), nn.Linear(fusion_dim, d_m)
        )

    def logits(self, fused: torch.Tensor, h_m: torch.Tensor) -> torch.Tensor:
        g = F.normalize(self.net(fused), dim=-1)  # Eq. 6: G_phi(F) / ||G_phi(F)||
        h = F.normalize(h_m, dim=-1)  # Eq. 6: h_m / ||h_m||
        return g @ h.T  # [i, j] = log s(F^i, h_m^j)

    def own_pair(self, fused: torch.Tensor, h_m: torch.Tensor) -> torch.Tensor:
        """log s(F^i, h_m^i) for each sample i."""
        return (F.normalize(self.net(fused), dim=-1) * F.normalize(h_m, dim=-1)).sum(-1)


class THNE(nn.Module):
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
        critic_hidden: int = 64,
        dropout: float = 0.1,
        variant: Variant = VARIANTS["thne"],
    ) -> None:
        super().__init__()
        self.variant = variant
        self.text_encoder = text_encoder
        fusion_in = d_t
        if variant.multimodal:
            self.visual_encoder = SequenceEncoder(visual_dim, visual_hidden)
            self.acoustic_encoder = SequenceEncoder(acoustic_dim, acoustic_hidden)
            fusion_in += visual_hidden + acoustic_hidden
            if variant.deno1:
                self.attend_v = TextGuidedAttention(d_t, visual_hidden)
                self.attend_a = TextGuidedAttention(d_t, acoustic_hidden)
            if variant.deno2:
                self.critic_tv = PairCritic(d_t, visual_hidden, critic_hidden)
                self.critic_ta = PairCritic(d_t, acoustic_hidden, critic_hidden)
            if variant.recovery:
                self.cpc_v = CPCHead(fusion_dim, visual_hidden)
                self.cpc_a = CPCHead(fusion_dim, acoustic_hidden)
        # Fusion network FN: stacked linear + activation layers into F.
        self.fusion = fusion_network(fusion_in, fusion_hidden, fusion_dim, dropout, nn.ReLU)
        self.regressor = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(fusion_dim, fusion_dim // 2),
            nn.ReLU(),
            nn.Linear(fusion_dim // 2, 1),
        )
        # Table 5's s_ft: a probe on detached inputs, trained beside the model but outside it.
        self.cpc_t_probe = CPCHead(fusion_dim, d_t)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        visual: torch.Tensor | None = None,
        visual_len: torch.Tensor | None = None,
        acoustic: torch.Tensor | None = None,
        acoustic_len: torch.Tensor | None = None,
    ) -> Output:
        # Eq. 1, text: the [CLS] vector of the encoder's last layer.
        h_t = self.text_encoder(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state[:, 0]
        if not self.variant.multimodal:
            fused = self.fusion(h_t)
            return Output(pred=self.predict(fused), h_t=h_t, fused=fused)

        # Eq. 1, visual and acoustic.
        steps_v, h_v = self.visual_encoder(visual, visual_len)
        steps_a, h_a = self.acoustic_encoder(acoustic, acoustic_len)
        attn_v = attn_a = None
        if self.variant.deno1:
            # Eq. 2
            h_vt, attn_v = self.attend_v(h_t, steps_v, padding(visual_len, visual.shape[1]))
            h_at, attn_a = self.attend_a(h_t, steps_a, padding(acoustic_len, acoustic.shape[1]))
            if self.variant.residual:
                h_vt, h_at = h_vt + h_v, h_at + h_a  # Eq. 10
        else:
            h_vt, h_at = h_v, h_a
        fused = self.fusion(torch.cat([h_t, h_vt, h_at], dim=-1))  # F = FN(X_t, X_v, X_a)
        return Output(
            pred=self.predict(fused),
            h_t=h_t,
            fused=fused,
            h_v=h_v,
            h_a=h_a,
            h_vt=h_vt,
            h_at=h_at,
            attn_v=attn_v,
            attn_a=attn_a,
        )

    def predict(self, fused: torch.Tensor) -> torch.Tensor:
        return regress(self.regressor, fused)

    def losses(self, out: Output, label: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every loss term of Eq. 9 the variant has; :meth:`total_loss` weighs and adds them."""
        terms = {"task": F.l1_loss(out.pred.float(), label.float())}  # Eq. 8
        logits = {}
        if self.variant.multimodal and self.variant.deno2:
            # Eq. 5: for each h_t^i, pick its own h_{m<-t}^i among the batch's.
            logits["l_tv"] = self.critic_tv(out.h_t, out.h_vt)
            logits["l_ta"] = self.critic_ta(out.h_t, out.h_at)
        if self.variant.multimodal and self.variant.recovery:
            # Eq. 7: for each F^i, pick its own pre-attention h_m^i among the batch's.
            logits["l_fv"] = self.cpc_v.logits(out.fused, out.h_v)
            logits["l_fa"] = self.cpc_a.logits(out.fused, out.h_a)
        if logits:
            # All [B, B]: their InfoNCE terms in one pass.
            nce = info_nce(torch.stack(list(logits.values())))
            terms.update(zip(logits, nce.unbind(), strict=True))
        return terms

    def total_loss(self, terms: dict[str, torch.Tensor], alpha: float, beta: float) -> torch.Tensor:
        """Eq. 9: L = l_task + alpha (l_ta + l_tv) + beta (l_fa + l_fv), over the terms present."""
        loss = terms["task"]
        # add(..., alpha=w): loss + w * term in one operation.
        for name in ("l_ta", "l_tv"):
            if name in terms:
                loss = loss.add(terms[name], alpha=alpha)
        for name in ("l_fa", "l_fv"):
            if name in terms:
                loss = loss.add(terms[name], alpha=beta)
        return loss

    def probe_loss(self, out: Output) -> torch.Tensor:
        """Loss of the s_ft probe; its inputs are detached, so only the probe learns from it."""
        return info_nce(self.cpc_t_probe.logits(out.fused.detach(), out.h_t.detach()))

    @torch.no_grad()
    def cpc_scores(self, out: Output) -> dict[str, torch.Tensor]:
        """s(F^i, h_m^i) of Eq. 6 for each clip: exp of the cosine of its own pair."""
        scores = {"s_ft": self.cpc_t_probe.own_pair(out.fused, out.h_t).exp()}
        if self.variant.multimodal:
            for name, head, h in (("s_fv", "cpc_v", out.h_v), ("s_fa", "cpc_a", out.h_a)):
                if hasattr(self, head):
                    scores[name] = getattr(self, head).own_pair(out.fused, h).exp()
        return scores
