"""Which device a training job takes: GPU claims with stand-in GPUs (no GPU needed), the error
when GPUs are there but torch cannot use them, and bf16 only on GPUs that compute it fast.

Stand-in GPUs: ``CUDA_VISIBLE_DEVICES`` and a stand-in ``nvidia-smi`` on the PATH say what the
machine has, and torch.cuda's answers are patched to match.
"""

import os
import stat

import pytest
import torch

from thne import devices
from thne.devices import claim_gpu, lock_folder, physical_gpus, resolve_device, visible_gpus
from thne.train import forward
from thne.train.config import TrainConfig


@pytest.fixture(autouse=True)
def release_claims():
    """Each test starts holding no lock, as a fresh training process does."""
    yield
    while devices._CLAIMED:
        devices._CLAIMED.pop().close()


def fake_nvidia_smi(folder, monkeypatch, uuids):
    """An ``nvidia-smi`` on the PATH that lists ``uuids`` as GPUs (``-L``'s format)."""
    folder.mkdir(exist_ok=True)
    lines = "".join(f"GPU {i}: NVIDIA H200 (UUID: {u})\\n" for i, u in enumerate(uuids))
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def torch_sees(monkeypatch, count):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


def test_visible_gpus_counts_without_torch(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")
    assert visible_gpus() == 1
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, ["GPU-aaa", "GPU-bbb", "GPU-ccc"])
    assert visible_gpus() == 3


def test_another_users_lock_is_passed_over_not_fatal(tmp_path, monkeypatch):
    """A lock that cannot be opened (another user's file; here a directory in its place) is
    a GPU taken, not a crash. Checked against opening the lock file before the try (the old
    claim_gpu): IsADirectoryError. The default folder is the user's own, private."""
    (tmp_path / devices._lock_name("GPU-aaa", 0)).mkdir()
    assert claim_gpu(["GPU-aaa", "GPU-bbb"], tmp_path) == 1
    # Every lock unusable: GPU 0 is shared, and training still starts.
    blocked = tmp_path / "blocked"
    for gpu in ("GPU-aaa", "GPU-bbb"):
        (blocked / devices._lock_name(gpu, 0)).mkdir(parents=True)
    assert claim_gpu(["GPU-aaa", "GPU-bbb"], blocked) == 0

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp_path / "tmp").mkdir()
    folder = lock_folder()
    assert folder.parent == tmp_path / "tmp" and str(os.getuid()) in folder.name
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_lock_folder_made_first_by_someone_else_is_not_used(tmp_path, monkeypatch, capsys):
    """The lock folder's name in /tmp is predictable: another user may make it first, as a
    file (before: FileExistsError at every job's start) or as a folder of theirs, or it may be
    writable by others. Each time the user's own cache folder (per host) is used instead."""
    import socket

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "tmp").mkdir()
    squatted = tmp_path / "tmp" / f"thne-gpu-locks-{os.getuid()}"
    fallback = tmp_path / "home" / ".cache" / "thne" / f"gpu-locks-{socket.gethostname()}"

    squatted.write_text("not a folder")
    assert lock_folder() == fallback
    assert "is not this user's private folder" in capsys.readouterr().err
    squatted.unlink()
    squatted.mkdir(mode=0o777)
    squatted.chmod(0o777)
    assert lock_folder() == fallback
    if os.geteuid() == 0:  # another owner: only root can make one here
        squatted.chmod(0o700)
        os.chown(squatted, 65534, 65534)
        assert lock_folder() == fallback
        os.chown(squatted, os.getuid(), os.getgid())
    assert lock_folder() == squatted
    assert claim_gpu(["GPU-aaa"], fallback) == 0


def test_locks_name_the_physical_gpu(tmp_path, monkeypatch):
    """Two runs that see disjoint GPUs (CUDA_VISIBLE_DEVICES=0,1 and =2,3) both take their
    first GPU: the locks name the physical GPU, not torch's index. Checked against locks named
    by index (thne-gpu{i}.lock): the second run took cuda:1."""
    torch_sees(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert resolve_device("auto", tmp_path) == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert resolve_device("auto", tmp_path) == "cuda:0"
    assert resolve_device("auto", tmp_path) == "cuda:1"  # physical GPU 3
    # With a driver, indices become UUIDs: "1" here and "GPU-bbb" elsewhere are one GPU.
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, ["GPU-aaa", "GPU-bbb", "GPU-ccc"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,GPU-ccc")
    assert physical_gpus() == ["GPU-bbb", "GPU-ccc"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert physical_gpus() == ["GPU-aaa", "GPU-bbb", "GPU-ccc"]
    torch_sees(monkeypatch, 3)
    locks = tmp_path / "locks"
    locks.mkdir()
    assert resolve_device("auto", locks) == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    torch_sees(monkeypatch, 2)
    # GPU-aaa is held by the job above, under whatever name the other job saw it.
    assert resolve_device("auto", locks) == "cuda:1"


def test_locks_follow_torchs_numbering(tmp_path, monkeypatch):
    """torch numbers GPUs fastest first (CUDA_DEVICE_ORDER), which need not be nvidia-smi's
    order: the lock of torch's cuda:i is the UUID torch gives cuda:i. Checked against naming
    by nvidia-smi's order: the job took cuda:0, the GPU already held."""
    from types import SimpleNamespace

    torch_sees(monkeypatch, 2)
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, ["GPU-aaa", "GPU-bbb"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    order = ["GPU-bbb", "GPU-aaa"]  # torch's cuda:0 is nvidia-smi's GPU 1
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda i: SimpleNamespace(uuid=order[i])
    )
    locks = tmp_path / "locks"
    locks.mkdir()
    assert claim_gpu(["GPU-bbb"], locks) == 0  # another job holds GPU-bbb
    assert resolve_device("auto", locks) == "cuda:1"


def test_concurrent_cuda_jobs_spread_over_the_gpus(tmp_path, monkeypatch, capsys):
    """``device: cuda`` claims a free GPU as auto does, so three jobs on three GPUs take one
    each; a fourth shares GPU 0 and says so. Checked against the old resolution (only auto
    claimed): every job trained on cuda, GPU 0. Locks are flock(2) locks on separate opens of
    the file, which conflict within one process as between processes."""
    torch_sees(monkeypatch, 3)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    assert [resolve_device("cuda", tmp_path) for _ in range(3)] == ["cuda:0", "cuda:1", "cuda:2"]
    assert resolve_device("cuda", tmp_path) == "cuda:0"
    assert "sharing GPU 0" in capsys.readouterr().err
    # Several jobs per GPU (slots): the first slot of every GPU before a second one.
    slots = tmp_path / "slots"
    slots.mkdir()
    assert [claim_gpu(["a", "b"], slots, per_gpu=2) for _ in range(4)] == [0, 1, 0, 1]


def test_cuda_n_is_honoured_as_given(tmp_path, monkeypatch):
    """``cuda:N`` trains on GPU N of those visible; its lock is taken, so auto jobs go
    elsewhere. An N beyond the visible GPUs (SLURM numbers a job's GPUs from 0) is an error
    that says so."""
    torch_sees(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert resolve_device("cuda:0", tmp_path) == "cuda:0"
    assert resolve_device("auto", tmp_path) == "cuda:1"
    assert resolve_device("cuda:1", tmp_path) == "cuda:1"  # as given, even though taken
    with pytest.raises(RuntimeError, match="torch sees 2 GPU"):
        resolve_device("cuda:2", tmp_path)
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu", tmp_path)


def test_gpus_torch_cannot_use_stop_training(tmp_path, monkeypatch):
    """GPUs that nvidia-smi lists but torch cannot use (a CPU build of torch, a driver older
    than its CUDA) stop a job that did not ask for the CPU, naming both facts and the fix.
    Checked against the old resolution: auto trained on the CPU, saying only "training on
    cpu"."""
    torch_sees(monkeypatch, 0)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path / "bin", monkeypatch, ["GPU-aaa", "GPU-bbb"])
    for asked in ("auto", "cuda"):
        with pytest.raises(RuntimeError) as err:
            resolve_device(asked, tmp_path)
        message = str(err.value)
        assert "shows 2 GPU(s)" in message and f"torch {torch.__version__}" in message
        assert "cannot use them" in message and "device: cpu" in message
    assert resolve_device("cpu", tmp_path) == "cpu"
    # thne train stops before it reads any data.
    from thne.cli import main as thne

    args = ["train", "--manifest", "m", "--text", "t", "--audio", "a", "--visual", "v"]
    with pytest.raises(SystemExit, match="thne train: this machine shows 2 GPU"):
        thne([*args, "--out-dir", str(tmp_path / "run")])
    # No GPU anywhere: auto is the CPU, cuda an error.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_device("auto", tmp_path) == "cpu"
    with pytest.raises(RuntimeError, match="has no GPU"):
        resolve_device("cuda", tmp_path)


def test_bf16_only_from_compute_capability_8(monkeypatch, capsys):
    """bf16 autocast on a GPU of compute capability 8.0 or more; below it float32, logged
    once. Checked against the old autocast (bf16 on any CUDA device): the 7.0 GPU got bf16."""
    cfg, gpu = TrainConfig(), torch.device("cuda:0")
    monkeypatch.setattr(forward, "_LOGGED", set())
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert not forward.bf16_enabled(cfg, gpu)
    assert not isinstance(forward.autocast(cfg, gpu), torch.autocast)
    assert not forward.bf16_enabled(cfg, gpu)
    err = capsys.readouterr().err
    assert err.count("compute capability 7.0") == 1 and "training in float32" in err
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    assert forward.bf16_enabled(cfg, gpu)
    assert not forward.bf16_enabled(TrainConfig(bf16=False), gpu)
    # The CPU: float32, unless the tests' bf16 mode is on.
    assert not forward.bf16_enabled(cfg, torch.device("cpu"))
    monkeypatch.setattr(forward, "CPU_BF16", True)
    assert forward.bf16_enabled(cfg, torch.device("cpu"))
    assert isinstance(forward.autocast(cfg, torch.device("cpu")), torch.autocast)


def test_jobs_per_gpu_share_each_gpu_in_turn(tmp_path, monkeypatch, capsys):
    """``train.jobs_per_gpu: 4`` on two GPUs: eight concurrent jobs, each a process of its own
    holding a lock, take GPU 0, 1, 0, 1, ... (a free slot of the least used GPU), and a ninth
    shares GPU 0 and says so. Checked against resolve_device without per_gpu passed on to
    claim_gpu: the third job already shared GPU 0."""
    torch_sees(monkeypatch, 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    got = [resolve_device("auto", tmp_path, per_gpu=4) for _ in range(8)]
    assert got == ["cuda:0", "cuda:1"] * 4
    assert "taken" not in capsys.readouterr().err
    assert resolve_device("cuda", tmp_path, per_gpu=4) == "cuda:0"
    assert "every GPU slot here is taken (2 GPUs x 4" in capsys.readouterr().err
