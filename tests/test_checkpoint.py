"""Checkpoints by time and on a stop signal, and resuming from them."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from test_train import _train_cli, assert_same_weights, checkpoint_record, load, make_dataset

from thne.train.checkpoint import CHECKPOINT, TrainingStopped
from thne.train.config import TrainConfig
from thne.train.loop import train_run
from thne.train.thne_optimiser import THNEOptimiser

# One worker under pytest-xdist runs this file's tests, so that its module fixtures are
# built once, not once on each worker.
pytestmark = pytest.mark.xdist_group("test_checkpoint")

CFG = dict(seed=5, batch_size=2, max_epochs=3, patience=8)
OUTPUTS = ("history.tsv", "predictions.tsv", "valid_metrics.json")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """test_train's twelve-clip dataset, made once for this module."""
    return make_dataset(tmp_path_factory.mktemp("data"))


def _checkpoint_writes(monkeypatch) -> list[dict]:
    """Records every checkpoint written (torch.save onto a checkpoint's temp name)."""
    written: list[dict] = []
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if CHECKPOINT in str(f):
            written.append(obj)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return written


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """An uninterrupted run under a large interval, and the checkpoints it wrote (none)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    with pytest.MonkeyPatch.context() as mp:
        written = _checkpoint_writes(mp)
        train_run(load(data_dir), TrainConfig(**CFG, checkpoint_every_s=3600), out)
    return out, written


def _same_outputs(a, b) -> None:
    for name in OUTPUTS:
        assert (a / name).read_text() == (b / name).read_text(), name
    assert_same_weights(a, b)


def test_interval_decides_when_checkpoints_are_written(data_dir, reference, tmp_path, monkeypatch):
    """0: one checkpoint per epoch; a large interval: none in a short run, same weights. And
    nothing is stored twice: where the best weights are the current ones, the checkpoint
    holds them once."""
    never, written_never = reference
    written = _checkpoint_writes(monkeypatch)
    train_run(load(data_dir), TrainConfig(**CFG, checkpoint_every_s=0), tmp_path / "every")
    records = [json.loads(w["record"]) for w in written]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    best_is_model = [r["best_epoch"] == r["epoch"] for r in records]
    assert [w["best_rows"] is None for w in written] == best_is_model
    assert any(best_is_model)
    assert written_never == []
    assert not (never / CHECKPOINT).exists()
    _same_outputs(tmp_path / "every", never)
    # The run holds the best-validation epoch's weights.
    import pandas as pd

    hist = pd.read_csv(never / "history.tsv", sep="\t")
    valid = hist[hist.split == "valid"]
    best_epoch = int(valid.loc[valid["mae"].idxmin(), "epoch"])
    assert json.loads((never / "run.json").read_text())["epoch"] == best_epoch


def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(
    data_dir, reference, tmp_path, monkeypatch
):
    """A SIGTERM during the second batch of epoch 2 writes a checkpoint after that batch and
    stops; started again, the run continues at the third batch and ends as an unbroken one."""
    data = load(data_dir)
    cfg = TrainConfig(**CFG, checkpoint_every_s=3600)

    real_step, calls = THNEOptimiser.step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # 3 batches per epoch (6 train clips, batch 2): epoch 2, batch 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(THNEOptimiser, "step", step)
    out = tmp_path / "stopped"
    with pytest.raises(TrainingStopped) as stopped:
        train_run(data, cfg, out)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert len(calls) == 5, "stopped right after the batch the signal came in"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "handler restored"
    state = torch.load(out / CHECKPOINT, weights_only=True)
    record = json.loads(state["record"])
    assert record["epoch"] == 1 and record["next_start"] == 4
    # The best weights (epoch 1's) differ from the current ones and are kept.
    assert record["best_epoch"] == 1 and state["best_rows"] is not None
    assert not (out / "model.safetensors").exists()

    monkeypatch.setattr(THNEOptimiser, "step", real_step)
    train_run(data, cfg, out)
    _same_outputs(reference[0], out)
    assert not (out / CHECKPOINT).exists()


@pytest.mark.slow
def test_sigterm_to_a_training_process(data_dir, tmp_path):
    """The real thing: `thne train` gets SIGTERM while it trains, exits 143 with a checkpoint,
    and a second start resumes from it and ends as an uninterrupted run."""
    extra = ("--batch-size", "2", "--max-epochs", "3")
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    subprocess.run(_train_cli(data_dir, whole, *extra), check=True, capture_output=True)

    # The default interval (600 s) writes no checkpoint in this short run: only the signal does.
    proc = subprocess.Popen(
        _train_cli(data_dir, stopped, *extra), stderr=subprocess.PIPE, text=True
    )
    lines = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        lines.append(line)
        assert time.monotonic() < deadline, "".join(lines)
        if line.startswith("epoch   1"):
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM, "".join(lines) + rest
    assert "got SIGTERM" in rest and (stopped / CHECKPOINT).is_file(), rest
    assert not (stopped / "model.safetensors").exists()
    assert checkpoint_record(stopped / CHECKPOINT)["epoch"] >= 1

    run = subprocess.run(
        _train_cli(data_dir, stopped, *extra), check=True, capture_output=True, text=True
    )
    assert "resuming " in run.stderr, run.stderr
    _same_outputs(whole, stopped)
    assert not (stopped / CHECKPOINT).exists()


def test_a_checkpoint_that_would_run_code_is_not_resumed(data_dir, tmp_path, capfd):
    """A checkpoint.pt planted in a run folder whose unpickling runs a command: it is not
    loaded, the command does not run, and training starts from the beginning.

    Break checked by hand: torch.load(weights_only=False) in load_checkpoint makes the marker
    file appear (and this test fail)."""
    from payload import RunsCode

    from thne.train.loop import run_fingerprint

    data, cfg = load(data_dir), TrainConfig(**{**CFG, "max_epochs": 1})
    out, marker = tmp_path / "run", tmp_path / "marker"
    out.mkdir()
    planted = {"fingerprint": run_fingerprint(cfg, data), "format": 2, "record": RunsCode(marker)}
    torch.save(planted, out / CHECKPOINT)
    train_run(data, cfg, out)
    err = capfd.readouterr().err
    assert "cannot be resumed" in err and "posix.system" in err, err
    assert "training from the start" in err and "resuming" not in err, err
    assert not marker.exists(), "the checkpoint's code ran"
    assert json.loads((out / "valid_metrics.json").read_text())["epochs"] == 1


@pytest.mark.slow
def test_a_checkpoint_of_other_code_is_not_resumed(data_dir, tmp_path, capfd):
    """The workflow passes each run its lineage (config and code, tests/test_reruns.py); a
    checkpoint written under another lineage, as by the code before an edit, starts over.
    Checked by hand: with lineage left out of the run's fingerprint, the second start resumed
    after epoch 1."""
    from test_train import Interrupted, interrupt_after_epoch

    data = load(data_dir)
    out = tmp_path / "run"
    before = TrainConfig(**CFG, checkpoint_every_s=0, lineage="code-before")
    with pytest.MonkeyPatch.context() as m:
        interrupt_after_epoch(m, 1)
        with pytest.raises(Interrupted):
            train_run(data, before, out)
    assert (out / CHECKPOINT).is_file()
    capfd.readouterr()
    train_run(data, TrainConfig(**CFG, checkpoint_every_s=0, lineage="code-after"), out)
    err = capfd.readouterr().err
    assert "written for another config or other data; training from the start" in err
    assert "resuming" not in err
