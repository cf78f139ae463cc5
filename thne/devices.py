"""Which GPUs this machine has, and which one a training job takes.

Counting GPUs must not import torch: the workflow profile and the Snakefile ask while they
plan, for every ``snakemake`` call.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# Held open for the life of the process that claimed the GPU; the lock goes with it.
_CLAIMED: list = []


def visible_gpus() -> int:
    """Number of CUDA GPUs a job here may use: ``CUDA_VISIBLE_DEVICES`` when set, else the
    GPUs ``nvidia-smi -L`` lists (0 without a driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        # A negative id hides that device and every one after it.
        count = 0
        for v in ids:
            if v.strip().startswith("-"):
                break
            count += 1
        return count
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if out.returncode != 0:
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def claim_gpu(n_gpus: int, lock_dir: str | os.PathLike | None = None) -> int:
    """Index of a GPU that no other training job on this machine holds, held until exit.

    Local runs limit the ``gpu`` resource to the GPUs present, so as many training jobs run as
    there are GPUs; each takes its own through a lock file per GPU. When every GPU is taken
    (jobs started outside Snakemake), GPU 0 is shared.
    """
    folder = Path(lock_dir or tempfile.gettempdir())
    for index in range(n_gpus):
        handle = open(folder / f"thne-gpu{index}.lock", "a")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _CLAIMED.append(handle)
        return index
    return 0
