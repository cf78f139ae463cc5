"""A batch through the model: the inputs it takes and the precision it runs in.

Shared by the t-HNE trainer (:mod:`thne.train.loop`) and MMIM's two-stage steps
(:mod:`thne.train.two_stage`), so that both run a batch the same way.
"""

from __future__ import annotations

import contextlib

import torch

from thne.train.config import TrainConfig


def autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``cfg.bf16``; nothing elsewhere."""
    if device.type == "cuda" and cfg.bf16:
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch less its labels: what the model's forward takes."""
    return {k: v for k, v in batch.items() if k != "label"}
