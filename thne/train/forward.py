"""A batch through the model: the inputs it takes and the precision it runs in.

Shared by each model's update step (:mod:`thne.train.thne_optimiser`,
:mod:`thne.train.mmim_optimiser`), validation (:mod:`thne.train.loop`) and ``thne predict``
(:mod:`thne.predict.score`), so that all run a batch the same way: a run's saved predictions
are what predict computes again.

Precision: bf16 autocast where ``cfg.bf16`` is set and the device computes bf16 fast, that is
a GPU of compute capability 8.0 or more (Ampere on). Older GPUs (V100, T4) emulate bf16: no
faster, less precise; they run float32, and the log says so once. The CPU runs float32 too,
unless :data:`CPU_BF16` is set: the tests set it to exercise on the CPU the mixed precision a
GPU run has.
"""

from __future__ import annotations

import contextlib
import sys

import torch

from thne.train.config import TrainConfig

# bf16 autocast on the CPU as well (when cfg.bf16): for tests of the bf16 path without a GPU.
CPU_BF16 = False
BF16_MIN_CAPABILITY = (8, 0)
# Devices whose float32 fall back was logged already.
_LOGGED: set[str] = set()


def bf16_enabled(cfg: TrainConfig, device: torch.device) -> bool:
    """Whether a batch on ``device`` runs under bf16 autocast."""
    if not cfg.bf16:
        return False
    if device.type == "cpu":
        return CPU_BF16
    if device.type != "cuda":
        return False
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) >= BF16_MIN_CAPABILITY:
        return True
    if str(device) not in _LOGGED:
        _LOGGED.add(str(device))
        major, minor = capability
        print(
            f"{device} has compute capability {major}.{minor}, below "
            f"{BF16_MIN_CAPABILITY[0]}.{BF16_MIN_CAPABILITY[1]}: no fast bf16 there, "
            "training in float32",
            file=sys.stderr,
            flush=True,
        )
    return False


def autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device`` where :func:`bf16_enabled`; nothing elsewhere."""
    if bf16_enabled(cfg, device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def precision(cfg: TrainConfig, device: torch.device) -> str:
    """``bf16`` or ``float32``: what a batch on ``device`` runs in, as a run records it."""
    return "bf16" if bf16_enabled(cfg, device) else "float32"


def autocast_as(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The precision a run recorded, on any device: ``thne predict`` scores a GPU run's clips
    under the bf16 its evaluation ran in, on the CPU too."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch less its labels: what the model's forward takes."""
    return {k: v for k, v in batch.items() if k != "label"}
