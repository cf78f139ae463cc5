"""Training hyper-parameters: one frozen record, filled from the config through CLI flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from thne.variants import MODEL_SWITCHES, SHIPPED_VARIANTS, SWITCHES, variant_values

if TYPE_CHECKING:  # the model module imports torch, which the CLI loads only to train
    from thne.model.thne import Variant

MODELS = tuple(MODEL_SWITCHES)


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
    # Frames kept of each clip's visual and acoustic sequences (longer ones are resampled).
    max_frames: int = 500
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
        # Checked against thne.variants, which imports nothing heavy: the workflow builds a
        # TrainConfig for every run it plans.
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        switches = {name: getattr(self, name) for name in SWITCHES}
        if self.model == "mmim":
            if switches != MODEL_SWITCHES["mmim"]:
                raise ValueError(
                    f"model mmim has no text-guided attention and no DeNo2, and always has its "
                    f"CPC terms: its switches are {MODEL_SWITCHES['mmim']}, this config has "
                    f"{switches}"
                )
            return
        entry = SHIPPED_VARIANTS.get(self.variant)
        if entry is None or entry.get("model", "thne") != "thne":
            return
        preset = {k: v for k, v in variant_values(entry).items() if k in SWITCHES}
        if preset != switches:
            raise ValueError(
                f"variant {self.variant!r} names a preset with switches {preset}, but this "
                f"config has {switches}: use TrainConfig.preset({self.variant!r}, ...) or "
                "another variant name"
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
        """A config for one of the shipped variants (:data:`thne.variants.SHIPPED_VARIANTS`,
        switches only: the loss weights are ``values``'), or any variant name with
        ``model="mmim"`` (MMIM's model and switches)."""
        if variant in SHIPPED_VARIANTS:
            entry = SHIPPED_VARIANTS[variant]
        elif values.get("model") == "mmim":
            entry = {"model": "mmim"}
        else:
            known = ", ".join(SHIPPED_VARIANTS)
            raise ValueError(f"unknown variant {variant!r}; known: {known}")
        if values.get("model") == "mmim":
            entry = {"model": "mmim"}
        preset = {k: v for k, v in variant_values(entry).items() if k not in ("alpha", "beta")}
        return cls(variant=variant, **{**preset, **values})
