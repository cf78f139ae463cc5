"""A run's model from its config: t-HNE (one of its variants) or MMIM, with its text encoder.

Training builds it fresh (:mod:`thne.train.loop`); a trained run is rebuilt from its
``run.json`` and its weights loaded into it (:mod:`thne.runs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from thne.model.mmim import MMIM
from thne.model.thne import THNE
from thne.text.loader import load_text_encoder

if TYPE_CHECKING:
    from thne.train.config import TrainConfig


def build_model(
    cfg: TrainConfig,
    visual_dim: int,
    acoustic_dim: int,
    encoder: tuple[torch.nn.Module, int] | None = None,
) -> THNE | MMIM:
    """t-HNE (one of its variants), or MMIM when ``cfg.model`` says so. ``encoder`` is the
    text encoder and its width; by default ``cfg.encoder``'s pretrained weights."""
    encoder, d_t = encoder or load_text_encoder(cfg.encoder)
    sizes = {
        "visual_hidden": cfg.visual_hidden,
        "acoustic_hidden": cfg.acoustic_hidden,
        "fusion_dim": cfg.fusion_dim,
        "dropout": cfg.dropout,
    }
    dims = (encoder, d_t, visual_dim, acoustic_dim)
    if cfg.model == "mmim":
        return MMIM(*dims, **sizes)
    return THNE(*dims, **sizes, variant=cfg.components)
