"""Checkpoints by time and on a stop signal, and resuming from them."""

import os
import signal
import subprocess
import time

import pytest
import test_train
import torch
from test_train import _train_cli, load

import thne.train.loop as loop
from thne.train.config import TrainConfig
from thne.train.loop import CHECKPOINT, TrainingStopped, train_run

# test_train's twelve-clip dataset fixture, as `data_dir` here.
data_dir = test_train.dataset
CFG = dict(seed=5, batch_size=2, max_epochs=4, patience=8)
OUTPUTS = ("history.tsv", "predictions.tsv", "valid_metrics.json")


def _checkpoint_writes(monkeypatch) -> list[int]:
    """Records the epoch of every checkpoint written (torch.save onto a checkpoint's temp name)."""
    written: list[int] = []
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if CHECKPOINT in str(f):
            written.append(obj["epoch"])
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return written


def _same_outputs(a, b) -> None:
    for name in OUTPUTS:
        assert (a / name).read_text() == (b / name).read_text(), name
    ma, mb = (torch.load(d / "model.pt", weights_only=False) for d in (a, b))
    assert ma["epoch"] == mb["epoch"]
    assert ma["state_dict"].keys() == mb["state_dict"].keys()
    for k, v in ma["state_dict"].items():
        assert torch.equal(v, mb["state_dict"][k]), k


def test_interval_decides_when_checkpoints_are_written(data_dir, tmp_path, monkeypatch):
    """0: one checkpoint per epoch; a large interval: none in a short run, same model.pt."""
    data = load(data_dir)
    written = _checkpoint_writes(monkeypatch)
    train_run(data, TrainConfig(**CFG, checkpoint_every_s=0), tmp_path / "every")
    assert written == [1, 2, 3, 4]
    written.clear()
    train_run(data, TrainConfig(**CFG, checkpoint_every_s=3600), tmp_path / "never")
    assert written == []
    assert not (tmp_path / "never" / CHECKPOINT).exists()
    _same_outputs(tmp_path / "every", tmp_path / "never")
    # model.pt holds the best-validation epoch's weights.
    import pandas as pd

    hist = pd.read_csv(tmp_path / "never" / "history.tsv", sep="\t")
    valid = hist[hist.split == "valid"]
    best_epoch = int(valid.loc[valid["mae"].idxmin(), "epoch"])
    assert torch.load(tmp_path / "never" / "model.pt", weights_only=False)["epoch"] == best_epoch


def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(data_dir, tmp_path, monkeypatch):
    """A SIGTERM during the second batch of epoch 2 writes a checkpoint after that batch and
    stops; started again, the run continues at the third batch and ends as an unbroken one."""
    data = load(data_dir)
    cfg = TrainConfig(**CFG, checkpoint_every_s=3600)
    train_run(data, cfg, tmp_path / "whole")

    real_step, calls = loop.train_step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # 3 batches per epoch (6 train clips, batch 2): epoch 2, batch 2
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", step)
    out = tmp_path / "stopped"
    with pytest.raises(TrainingStopped) as stopped:
        train_run(data, cfg, out)
    assert stopped.value.code == 128 + signal.SIGTERM
    assert len(calls) == 5, "stopped right after the batch the signal came in"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "handler restored"
    state = torch.load(out / CHECKPOINT, weights_only=False)
    assert state["epoch"] == 1 and state["progress"]["next_start"] == 4
    # Nothing twice: the best weights (epoch 1's) differ from the current ones and are kept.
    assert not state["best_is_model"] and state["best_state"] is not None
    assert not (out / "model.pt").exists()

    monkeypatch.setattr(loop, "train_step", real_step)
    train_run(data, cfg, out)
    _same_outputs(tmp_path / "whole", out)
    assert not (out / CHECKPOINT).exists()


def test_best_weights_are_not_stored_twice(data_dir, tmp_path, monkeypatch):
    """At the end of an epoch that improved, the checkpoint's weights are the best ones."""
    written = []
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if CHECKPOINT in str(f):
            written.append((obj["best_is_model"], obj["best_state"] is None))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    train_run(load(data_dir), TrainConfig(**CFG, checkpoint_every_s=0), tmp_path / "run")
    assert written and all(is_model == no_copy for is_model, no_copy in written)
    assert (True, True) in written


def test_sigterm_to_a_training_process(data_dir, tmp_path):
    """The real thing: `thne train` gets SIGTERM while it trains, exits 143 with a checkpoint,
    and a second start resumes from it and ends as an uninterrupted run."""
    extra = ("--batch-size", "2", "--max-epochs", "4")
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
    assert not (stopped / "model.pt").exists()
    state = torch.load(stopped / CHECKPOINT, weights_only=False)
    assert state["epoch"] >= 1

    run = subprocess.run(
        _train_cli(data_dir, stopped, *extra), check=True, capture_output=True, text=True
    )
    assert "resuming " in run.stderr, run.stderr
    _same_outputs(whole, stopped)
    assert not (stopped / CHECKPOINT).exists()
