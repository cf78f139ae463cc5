"""Training hyper-parameters: one frozen record, filled from the config through CLI flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = "all-MiniLM-L6-v2"
    variant: str = "thne"
    batch_size: int = 32
    lr: float = 1e-3
    bert_lr: float = 5e-5
    alpha: float = 0.3
    beta: float = 0.1
    visual_hidden: int = 32
    acoustic_hidden: int = 32
    fusion_dim: int = 128
    dropout: float = 0.1
    grad_clip: float = 5.0
    weight_decay: float = 0.0
    max_epochs: int = 40
    patience: int = 8
    seed: int = 1
