"""Training hyper-parameters: one frozen record, filled from the config through CLI flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the model module imports torch, which the CLI loads only to train
    from thne.model.thne import Variant


MODELS = ("thne", "mmim")


@dataclass(frozen=True)
class TrainConfig:
    encoder: str = "all-MiniLM-L6-v2"
    # The variant's name labels the run; the model and the switches below say what it is:
    # t-HNE with the switches of Variant, or MMIM (thne/model/mmim.py, no switches of its own).
    variant: str = "thne"
    model: str = "thne"
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
    # bf16 autocast of the forward pass; used on GPUs of compute capability 8.0 or more only
    # (older GPUs and the CPU run float32; thne.train.forward says why).
    bf16: bool = True
    # MMIM only: learning rate of its MI estimators (stage one), and how many past batches
    # its entropy estimate remembers (emptied each epoch; 1 in MMIM's public code).
    mi_lr: float = 1e-3
    mi_memory: int = 1
    # Seconds between checkpoints of the training state (0: at the end of every epoch). How a
    # run is carried out, not what it computes: a checkpoint resumes under any value.
    checkpoint_every_s: float = 600.0
    # The workflow's fingerprint of the config and code behind this run and its inputs (its
    # lineage param). Part of the run's fingerprint, so a checkpoint written by other code is
    # not resumed by this one.
    lineage: str = ""

    def __post_init__(self) -> None:
        from thne.model.thne import VARIANTS

        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if self.model == "mmim":
            from thne.model.mmim import MMIM_SKELETON

            if asdict(self.components) != asdict(MMIM_SKELETON):
                raise ValueError(
                    f"model mmim has no text-guided attention and no DeNo2, and always has its "
                    f"CPC terms: its switches are {asdict(MMIM_SKELETON)}, this config has "
                    f"{asdict(self.components)}"
                )
            return

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
        """A config for one of the named variants of :data:`thne.model.thne.VARIANTS`, or for
        ``mmim`` (MMIM's model and switches)."""
        from thne.model.thne import VARIANTS

        if variant == "mmim" or values.get("model") == "mmim":
            from thne.model.mmim import MMIM_SKELETON

            values = {**asdict(MMIM_SKELETON), "model": "mmim", **values}
            return cls(variant=variant, **values)
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        return cls(variant=variant, **{**asdict(VARIANTS[variant]), **values})
