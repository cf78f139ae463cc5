"""A full disk, on a real small filesystem: each stage stops with one line that names the file
and the free space, leaves no partial output, and succeeds once there is room.

The filesystem is a tmpfs mount, which needs root: CI runs as root; elsewhere these tests skip
and say why.
"""

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_train import _train_cli, make_dataset

from conftest import BIN, REPO, need
from thne.data.manifest import Clip, write_manifest
from thne.features.store import extract_to_h5

ERROR = "error: no space left on device while writing "


@pytest.fixture
def small_disk(tmp_path):
    """A mounted 8 MB tmpfs, and a function that resizes it (in tmpfs terms: '2M', '300M')."""
    if os.geteuid() != 0:
        pytest.skip("a small real filesystem (tmpfs) needs root to mount; CI runs as root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8M", "tmpfs", str(disk)], check=True)

    def resize(size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)

    try:
        yield disk, resize
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _thne(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("THNE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "thne.cli", *args], capture_output=True, text=True, env=env
    )


def _stopped_in_one_line(proc: subprocess.CompletedProcess, stage: str, path: Path) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"thne {stage}: {ERROR}{path} ("), proc.stderr
    assert " MB free); free space or move " in lines[-1]
    assert "Traceback" not in proc.stderr and "errno" not in proc.stderr


def _only(folder: Path, names: set[str]) -> None:
    """No partial file: nothing in ``folder`` but ``names`` (no .tmp left behind)."""
    assert {p.name for p in folder.rglob("*") if p.is_file()} == names


def test_merge_on_a_full_disk(small_disk, tmp_path):
    """Checked by hand: with atomic_path's check of the error removed, the stage ended in
    HDF5's traceback ('errno = 28') and no thne line."""
    disk, resize = small_disk
    resize("2M")
    rng = np.random.default_rng(0)
    parts = []
    for shard in range(2):
        clips = [Clip(f"c{shard}_{i}", f"v{shard}", 0, 10, "train", 0, "x", "m") for i in range(4)]
        part = tmp_path / f"{shard}.h5"
        # 4 clips of 1,000 x 100 float32 per shard: 3.2 MB in all, more than the disk holds.
        extract_to_h5(
            clips,
            part,
            lambda c: (
                rng.normal(size=(1000, 100)).astype(np.float32),
                np.linspace(0, 9.99, 1000, dtype=np.float32),
            ),
            feature_names=[f"f{j}" for j in range(100)],
            extractor="test",
            config={},
        )
        parts.append(str(part))
    out = disk / "audio.h5"
    _stopped_in_one_line(_thne("merge", "--inputs", *parts, "--out", str(out)), "merge", out)
    _only(disk, set())

    resize("20M")
    proc = _thne("merge", "--inputs", *parts, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as h5:
        assert len(h5.keys()) == 8


@pytest.mark.slow
def test_feature_extraction_on_a_full_disk(small_disk, tmp_path):
    """Real librosa features of two demo clips, on a disk with 8 kB left. Checked by hand:
    without ensure_room before each clip's write, HDF5 raised nothing where it wrote and
    printed a traceback for every object it freed."""
    disk, _ = small_disk
    media = REPO / "resources/demo/Raw/demo01"
    clips = [
        Clip(f"demo01_{i}", "demo01", 0.0, 2.0, "train", 0.0, "x", str(need(media / f"{i}.mp4")))
        for i in (1, 2)
    ]
    manifest = tmp_path / "manifest.tsv"
    write_manifest(manifest, clips)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * (8 * 1024 * 1024 - 8 * 1024))
    out = disk / "shard0.h5"
    args = ("audio", "--manifest", str(manifest), "--out", str(out), "--threads", "1")
    _stopped_in_one_line(_thne(*args), "audio", out)
    _only(disk, {"filler"})

    filler.unlink()
    proc = _thne(*args)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as h5:
        assert sorted(h5.keys()) == ["demo01_1", "demo01_2"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
def test_training_on_a_full_disk(small_disk, dataset):
    """The first write is a checkpoint (torch's writer), then, with room for it, the run's
    weights. Checked by hand: without the probe write after torch's error, training ended
    with 'RuntimeError: [enforce fail at inline_container.cc:...] . unexpected pos ...' and
    no word of the disk."""
    disk, resize = small_disk
    resize("30M")
    out = disk / "run"
    every_epoch = ("--max-epochs", "1", "--checkpoint-every-s", "0")
    proc = subprocess.run(_train_cli(dataset, out, *every_epoch), capture_output=True, text=True)
    _stopped_in_one_line(proc, "train", out / "checkpoint.pt")
    _only(disk, set())

    # Room for the checkpoint, not for the weights written at the end.
    resize("250M")
    proc = subprocess.run(_train_cli(dataset, out, *every_epoch), capture_output=True, text=True)
    _stopped_in_one_line(proc, "train", out / "model.safetensors")
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]

    resize("700M")
    proc = subprocess.run(_train_cli(dataset, out, *every_epoch), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    run_files = {"model.safetensors", "run.json", "history.tsv", "predictions.tsv"}
    assert {p.name for p in out.iterdir()} == run_files | {"valid_metrics.json", "encoder"}
    assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
