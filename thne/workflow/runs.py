"""A training run's settings, resolved in one place from the config.

``resolve_run(config, ds, variant, point)`` is the :class:`~thne.train.config.TrainConfig`
that a run of ``variant`` on dataset ``ds`` (at a grid ``point``) trains with. The train,
grid and tuned rules take their ``thne train`` flags from it (``train_flags``), lineage
fingerprints it, and the grid report and the benchmarks read their values from it. A train
key of the config reaches a run when ``TrainConfig`` has a field of that name: a new
hyper-parameter is a schema entry and a field, nothing else.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from thne.train.config import TrainConfig
from thne.variants import LOSS_WEIGHTS

# TrainConfig fields set per job, not per run: the seed (a wildcard), the lineage (a param)
# and the checkpoint interval (a resource, which never reruns a job).
PER_JOB = ("seed", "lineage", "checkpoint_every_s")
SWITCHES = ("deno1", "deno2", "recovery", "residual", "multimodal")


def resolve_run(
    config: Mapping, ds: str, variant: str, point: Mapping[str, Any] | None = None
) -> TrainConfig:
    """The settings a run of ``variant`` trains with, in order of precedence: a grid point's
    values (they are searched), the variant's own loss weights (paper section 5.2 lowers
    alpha for its Eq. 10 model), the dataset's ``train:`` values, TrainConfig's defaults.
    The model and switches are the variant's, over its model's own (MMIM has neither DeNo1
    nor DeNo2); the encoder is the dataset's ``text.encoder``."""
    if variant not in config["variants"]:
        raise ValueError(f"variant {variant!r} is not defined under variants: in the config")
    section = config["datasets"][ds]
    entry = dict(config["variants"][variant] or {})
    model = entry.pop("model", "thne")
    weights = {key: entry.pop(key) for key in LOSS_WEIGHTS if key in entry}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(PER_JOB)
    train = {**section["train"], **weights, **(point or {})}
    values = {key: value for key, value in train.items() if key in fields}
    switches = {**dict.fromkeys(SWITCHES, True), "residual": False}
    if model == "mmim":
        switches.update(deno1=False, deno2=False)
    switches.update(entry)
    return TrainConfig(
        **values,
        **switches,
        model=model,
        variant=variant,
        encoder=section["text"]["encoder"],
    )


def train_flags(cfg: TrainConfig) -> str:
    """The ``thne train`` flags that give ``cfg`` (but its per-job fields), one per field of
    TrainConfig: ``--batch-size 32 ... --no-residual``."""
    import shlex

    flags = []
    for f in dataclasses.fields(cfg):
        if f.name in PER_JOB:
            continue
        flag, value = f"--{f.name.replace('_', '-')}", getattr(cfg, f.name)
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        else:
            flags.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(flags)


def run_flags(config: Mapping, ds: str, variant: str, point: Mapping | None = None) -> str:
    """The flags of ``thne train`` for a run (train_flags), and the device it trains on."""
    cfg = resolve_run(config, ds, variant, point)
    return f"{train_flags(cfg)} --device {config['datasets'][ds]['train']['device']}"


def untuned_values(config: Mapping, ds: str) -> str:
    """Per variant the grid tunes, the values of the grid's axes its untuned runs train with
    (the grid report's "untuned" column), as JSON."""
    import json

    grid = config["datasets"][ds]["grid"]
    runs = {v: resolve_run(config, ds, v) for v in grid["variants"]}
    return json.dumps({v: {k: getattr(run, k) for k in grid["axes"]} for v, run in runs.items()})


def computed_values(cfg: TrainConfig, device: str) -> dict[str, Any]:
    """What a run computes with, for its lineage: its settings but the per-job ones, and the
    device it trains on (a GPU's arithmetic differs from the CPU's)."""
    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in PER_JOB}
    return {**values, "device": device}


@functools.cache
def _local_gpus() -> int:
    # Asked only where a training job is planned, and once: every job parses the workflow.
    from thne.devices import visible_gpus

    return visible_gpus()


def train_gpus(config: Mapping, ds: str) -> int:
    """1 for a job that trains on a GPU of this machine: device cuda, or auto where this
    machine has a GPU. The SLURM profile replaces it (set-resources) with the GPUs a job asks
    of the cluster's nodes, whatever the submitting host has."""
    device = str(config["datasets"][ds]["train"]["device"])
    return int(device.startswith("cuda") or (device == "auto" and _local_gpus() > 0))


def train_gpu_slots(config: Mapping, ds: str) -> int:
    """The GPU slots of this machine a training job holds: the profile counts SLOTS_PER_GPU
    per GPU and a job takes SLOTS_PER_GPU / jobs_per_gpu, so that many train on each GPU."""
    from thne.devices import SLOTS_PER_GPU

    per_gpu = config["datasets"][ds]["train"]["jobs_per_gpu"]
    return SLOTS_PER_GPU // per_gpu if train_gpus(config, ds) else 0
