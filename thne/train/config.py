"""Training hyper-parameters: one frozen record, filled from the config through CLI flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model module imports torch, which the CLI loads only to train
    from thne.model.thne import Variant


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = "all-MiniLM-L6-v2"
    # The variant's name labels the run; the switches below say what it is (see Variant).
    variant: str = "thne"
    deno1: bool = True
    deno2: bool = True
    recovery: bool = True
    residual: bool = False
    multimodal: bool = True
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
    # bf16 autocast of the forward pass; used on CUDA only (CPU runs stay in float32).
    bf16: bool = True
    # Seconds between checkpoints of the training state (0: at the end of every epoch). How a
    # run is carried out, not what it computes: a checkpoint resumes under any value.
    checkpoint_every_s: float = 600.0

    def __post_init__(self) -> None:
        from thne.model.thne import VARIANTS

        preset = VARIANTS.get(self.variant)
        if preset is not None and asdict(preset) != asdict(self.components):
            raise ValueError(
                f"variant {self.variant!r} names a preset with switches {asdict(preset)}, but "
                f"this config has {asdict(self.components)}: use TrainConfig.preset("
                f"{self.variant!r}, ...) or another variant name"
            )

    @property
    def components(self) -> Variant:
        from thne.model.thne import Variant

        return Variant(
            deno1=self.deno1,
            deno2=self.deno2,
            recovery=self.recovery,
            residual=self.residual,
            multimodal=self.multimodal,
        )

    @classmethod
    def preset(cls, variant: str, **values) -> TrainConfig:
        """A config for one of the named variants of :data:`thne.model.thne.VARIANTS`."""
        from thne.model.thne import VARIANTS

        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        return cls(variant=variant, **{**asdict(VARIANTS[variant]), **values})
