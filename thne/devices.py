"""Which GPUs this machine has, and which device a training job trains on.

Counting GPUs must not import torch: the workflow profile and the Snakefile ask while they
plan, for every ``snakemake`` call. :func:`resolve_device` imports it, at training time.

A training job takes a GPU through a lock file held for the life of its process. The locks sit
in a folder of the user's own (another user's lock can neither be opened nor block this one)
and are named by the physical GPU, not by torch's index, so two jobs that see different GPUs
under the same index (``CUDA_VISIBLE_DEVICES=0,1`` and ``=2,3``) never take each other's lock.
Each GPU has ``per_gpu`` slots (one lock file each); a job takes the first free slot, filling
the first slot of every GPU before the second of any, so jobs spread over the GPUs.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

# The workflow counts each GPU of a machine as this many slots (resource gpu_slots); a training
# job holds SLOTS_PER_GPU / jobs_per_gpu of them, so jobs_per_gpu is 1, 2, 4 or 8.
SLOTS_PER_GPU = 8

# Held open for the life of the process that claimed the GPU; the lock goes with it.
_CLAIMED: list = []


def _cuda_visible() -> list[str] | None:
    """The entries of ``CUDA_VISIBLE_DEVICES`` CUDA uses (None when unset)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    ids = []
    for v in (v.strip() for v in visible.split(",")):
        # A negative (or empty) id hides that device and every one after it.
        if not v or v.startswith("-"):
            break
        ids.append(v)
    return ids


def nvidia_smi_uuids() -> list[str]:
    """The UUID of each GPU ``nvidia-smi -L`` lists, in its order (empty without a driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    uuids = []
    for line in out.stdout.splitlines():
        if line.startswith("GPU "):
            found = re.search(r"UUID: ([^)\s]+)", line)
            uuids.append(found.group(1) if found else line.split(":")[0].removeprefix("GPU "))
    return uuids


def visible_gpus() -> int:
    """Number of CUDA GPUs a job here may use: ``CUDA_VISIBLE_DEVICES`` when set, else the
    GPUs ``nvidia-smi -L`` lists (0 without a driver)."""
    visible = _cuda_visible()
    return len(visible) if visible is not None else len(nvidia_smi_uuids())


def physical_gpus() -> list[str]:
    """The physical identity of each GPU torch numbers 0, 1, ...: its UUID where ``nvidia-smi``
    gives one, else its ``CUDA_VISIBLE_DEVICES`` entry, else its index."""
    uuids = nvidia_smi_uuids()
    visible = _cuda_visible()
    if visible is None:
        return uuids
    ids = []
    for entry in visible:
        # CUDA_VISIBLE_DEVICES holds indices into nvidia-smi's list, or UUIDs (GPU-..., MIG-...).
        if entry.isdigit() and int(entry) < len(uuids):
            ids.append(uuids[int(entry)])
        else:
            ids.append(entry)
    return ids


def lock_folder() -> Path:
    """The user's own folder for GPU locks: in ``$XDG_RUNTIME_DIR`` (private to the user)
    where there is one, else in the temporary directory, where another user could have made
    the name first; a folder there that is not this user's own directory, mode 0700, is not
    used, and a fresh private one is made instead."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime and os.path.isdir(runtime) else Path(tempfile.gettempdir())
    folder = base / f"thne-gpu-locks-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        pass  # a file in its place: checked below
    if _private_dir(folder):
        return folder
    # Made first by someone else: the user's own cache folder, per host (jobs of this host
    # must find each other's locks there).
    fallback = Path.home() / ".cache" / "thne" / f"gpu-locks-{socket.gethostname()}"
    print(
        f"{folder} is not this user's private folder; GPU locks go to {fallback}", file=sys.stderr
    )
    fallback.mkdir(mode=0o700, parents=True, exist_ok=True)
    return fallback


def _private_dir(folder: Path) -> bool:
    """A real directory (no link) that this user owns and no one else may write to."""
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.getuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    )


def _lock_name(gpu: str, slot: int) -> str:
    return "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", gpu) + f".slot{slot}.lock"


def _try_lock(path: Path) -> bool:
    """Take the lock at ``path`` for the life of this process; False when another holds it
    or it cannot be opened (another user's file, a directory in its place)."""
    try:
        handle = open(path, "a")  # noqa: SIM115 - held until exit
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return False
    _CLAIMED.append(handle)
    return True


def claim_gpu(
    gpus: Sequence[str], lock_dir: str | os.PathLike | None = None, per_gpu: int = 1
) -> int:
    """Index (into ``gpus``, torch's numbering) of a GPU slot no other training job of this
    user holds, held until exit. ``gpus`` names each GPU physically (:func:`physical_gpus`).

    Local runs limit the ``gpu`` resource to the GPUs present, so as many training jobs run as
    there are GPUs; each takes its own. When every slot is taken (jobs started outside
    Snakemake), GPU 0 is shared, and the log says so.
    """
    folder = Path(lock_dir) if lock_dir is not None else lock_folder()
    for slot in range(per_gpu):
        for index, gpu in enumerate(gpus):
            if _try_lock(folder / _lock_name(gpu, slot)):
                return index
    print(
        f"every GPU slot here is taken ({len(gpus)} GPUs x {per_gpu}, locks in {folder}): "
        "sharing GPU 0",
        file=sys.stderr,
    )
    return 0


def torch_gpu_uuids(count: int) -> list[str]:
    """Each GPU's UUID in torch's own numbering (which follows CUDA_DEVICE_ORDER, not always
    nvidia-smi's), or nothing where this torch does not report them."""
    import torch

    try:
        uuids = [str(torch.cuda.get_device_properties(i).uuid) for i in range(count)]
    except Exception:  # noqa: BLE001 - an older torch, or none of CUDA: name them otherwise
        return []
    return uuids if len(set(uuids)) == count else []


def resolve_device(
    requested: str, lock_dir: str | os.PathLike | None = None, per_gpu: int = 1
) -> str:
    """The torch device a training job asked for as ``requested`` runs on.

    ``cpu``: the CPU. ``auto``: a free GPU, else the CPU where this machine has no GPU.
    ``cuda``: a free GPU slot, claimed as ``auto`` does (``per_gpu`` jobs share each GPU:
    ``train.jobs_per_gpu``). ``cuda:N``: GPU N of those visible, as
    given (its lock is taken when free, so ``auto`` jobs avoid it). A machine whose GPUs
    ``nvidia-smi`` or ``CUDA_VISIBLE_DEVICES`` shows but torch cannot use is an error, not a
    silent fall back to the CPU, unless ``cpu`` is asked for.
    """
    if requested == "cpu":
        return "cpu"
    if requested not in ("auto", "cuda") and not re.fullmatch(r"cuda:\d+", requested):
        raise ValueError(f"device {requested!r}: expected auto, cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        present = visible_gpus()
        if present:
            build = torch.version.cuda or "none (a CPU-only build)"
            raise RuntimeError(
                f"this machine shows {present} GPU(s) (nvidia-smi / CUDA_VISIBLE_DEVICES), but "
                f"torch {torch.__version__} (CUDA build: {build}) cannot use them, so training "
                "would run on the CPU. Install a torch built for CUDA that this driver supports "
                "(nvidia-smi shows the driver's CUDA version), or set train: device: cpu in the "
                "config (thne train --device cpu) to train on the CPU on purpose."
            )
        if requested == "auto":
            return "cpu"
        raise RuntimeError(f"device {requested!r} asked for, but this machine has no GPU")
    count = torch.cuda.device_count()
    gpus = torch_gpu_uuids(count) or physical_gpus()
    if len(gpus) != count:
        # nvidia-smi disagrees with torch (MIG, an unusual CUDA_VISIBLE_DEVICES): torch's
        # indices still name distinct GPUs within this process's view.
        gpus = [str(i) for i in range(count)]
    if requested.startswith("cuda:"):
        index = int(requested.split(":")[1])
        if index >= count:
            raise RuntimeError(
                f"device {requested!r} asked for, but torch sees {count} GPU(s) here "
                "(under SLURM a job sees only its own GPUs, from cuda:0: use cuda or auto)"
            )
        _try_lock(
            (Path(lock_dir) if lock_dir is not None else lock_folder()) / _lock_name(gpus[index], 0)
        )
        return requested
    return f"cuda:{claim_gpu(gpus, lock_dir, per_gpu=per_gpu)}"
