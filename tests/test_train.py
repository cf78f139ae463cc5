import json

import h5py
import numpy as np
import pandas as pd
import pytest

from thne.data.manifest import Clip, write_manifest
from thne.evaluate.aggregate import aggregate_runs, evaluate_predictions
from thne.features.normalise import Normaliser
from thne.features.store import Exclusion, extract_to_h5, read_h5
from thne.text.tokenize import tokenize_manifest
from thne.train.config import TrainConfig
from thne.train.data import fit_length, load_dataset
from thne.train.loop import train_run

WORDS = {1.0: "great", -1.0: "awful", 0.0: "okay"}


@pytest.fixture
def dataset(tmp_path):
    """Twelve clips whose label is the text word plus a loudness cue: enough to train on."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(12):
        t, a = [1.0, -1.0, 0.0][i % 3], [1.0, -1.0][i % 2]
        split = "train" if i < 6 else ("valid" if i < 9 else "test")
        clips.append(
            Clip(
                f"v{i // 3}_{i}",
                f"v{i // 3}",
                0.0,
                2.0,
                split,
                t + a,
                f"the film was {WORDS[t]}",
                f"v{i}.mp4",
            )
        )
    write_manifest(tmp_path / "manifest.tsv", clips)
    tokenize_manifest(
        tmp_path / "manifest.tsv", tmp_path / "text.h5", encoder="all-MiniLM-L6-v2", max_length=12
    )

    def fake(dim, cue_col):
        def extract(clip):
            n = int(rng.integers(5, 30))
            x = rng.normal(size=(n, dim)).astype(np.float32)
            x[:, cue_col] += clip.label
            # n frames spread over the whole clip, as an extractor's frames must be.
            return x, np.arange(n, dtype=np.float32) * (clip.end - clip.start) / n

        return extract

    for name, dim in (("audio", 4), ("visual", 6)):
        extract_to_h5(
            clips,
            tmp_path / f"{name}.h5",
            fake(dim, 0),
            feature_names=[f"{name}{j}" for j in range(dim)],
            extractor="test",
            config={},
        )
    return tmp_path


def load(dataset, **kwargs):
    """The fixture's dataset as training sees it."""
    files = [dataset / n for n in ("manifest.tsv", "text.h5", "audio.h5", "visual.h5")]
    return load_dataset(*files, **kwargs)


def test_feature_file_contract(dataset):
    with h5py.File(dataset / "audio.h5") as h5:
        assert list(h5.attrs["feature_names"]) == [b"audio0", b"audio1", b"audio2", b"audio3"] or [
            str(n) for n in h5.attrs["feature_names"]
        ] == ["audio0", "audio1", "audio2", "audio3"]
        assert h5["v0_0/features"].dtype == np.float32 and h5["v0_0/timestamps"].ndim == 1
        assert json.loads(h5.attrs["excluded"]) == []
    ff = read_h5(dataset / "audio.h5", ["v0_0", "missing"])
    assert list(ff.features) == ["v0_0"] and ff.extractor == "test"


def test_normaliser_uses_given_sequences_only():
    norm = Normaliser.fit([np.array([[1.0, 5.0], [3.0, 5.0]])])
    assert np.allclose(norm.mean, [2.0, 5.0]) and np.allclose(norm.std, [1.0, 1.0])
    assert np.allclose(norm(np.array([[2.0, 5.0]])), 0.0)


def test_normaliser_keeps_no_face_frames_zero():
    seq = np.array([[1.0, 100.0], [1.0, 300.0], [0.0, 0.0], [0.0, 0.0]])
    norm = Normaliser.fit([seq], ["face_detected", "x_0"])
    assert norm.mean.tolist() == [0.0, 200.0]  # zero rows left out of the statistics
    z = norm(seq)
    assert z[:, 0].tolist() == [1.0, 1.0, 0.0, 0.0]  # the flag keeps its 0/1
    assert z[2:].tolist() == [[0.0, 0.0], [0.0, 0.0]] and z[0, 1] == pytest.approx(-1.0)
    x = np.arange(10)[:, None]
    assert fit_length(x, 4)[:, 0].tolist() == [0, 3, 6, 9]


def test_load_dataset_normalises_on_train_only(dataset):
    data = load(dataset)
    assert {s: len(t) for s, t in data.splits.items()} == {"train": 6, "valid": 3, "test": 3}
    train = data.splits["train"]
    frames = np.concatenate([train.acoustic[i, : train.acoustic_len[i]].numpy() for i in range(6)])
    assert np.allclose(frames.mean(0), 0, atol=1e-5) and np.allclose(frames.std(0), 1, atol=1e-4)
    test = data.splits["test"]
    assert (test.acoustic[0, test.acoustic_len[0] :] == 0).all()  # padding stays zero


def test_clip_missing_from_a_feature_file_is_left_out_with_reason(dataset, tmp_path):
    from thne.data.manifest import read_manifest
    from thne.media import MediaError

    clips = read_manifest(dataset / "manifest.tsv")

    def flaky(clip):
        if clip.clip_id == "v0_1":
            raise MediaError(f"{clip.media}: cannot be decoded (test)")
        return np.ones((3, 6), np.float32), np.array([0.0, 0.7, 1.4], np.float32)

    excluded = extract_to_h5(
        clips,
        tmp_path / "v2.h5",
        flaky,
        feature_names=list("abcdef"),
        extractor="t",
        config={},
        on_bad_clip="exclude",
    )
    assert excluded == [Exclusion("v0_1", "v1.mp4: cannot be decoded (test)")]
    data = load_dataset(
        dataset / "manifest.tsv", dataset / "text.h5", dataset / "audio.h5", tmp_path / "v2.h5"
    )
    assert data.dropped == [
        {"clip_id": "v0_1", "reason": "no visual features: v1.mp4: cannot be decoded (test)"}
    ]
    assert len(data.splits["train"]) == 5
    from thne.features.store import ClipError

    def crashing(clip):
        raise ZeroDivisionError("boom")

    excluded = extract_to_h5(
        clips[:1],
        tmp_path / "v4.h5",
        crashing,
        feature_names=list("abcdef"),
        extractor="t",
        config={},
        on_bad_clip="exclude",
    )
    assert excluded == [Exclusion("v0_0", "ZeroDivisionError: boom")]
    with pytest.raises(ClipError, match="^clip v0_1: v1.mp4: cannot be decoded"):
        extract_to_h5(
            clips, tmp_path / "v3.h5", flaky, feature_names=list("abcdef"), extractor="t", config={}
        )
    assert not (tmp_path / "v3.h5").exists()  # no half-written output


def test_train_run_writes_run_directory(dataset, tmp_path):
    data = load(dataset)
    cfg = TrainConfig(batch_size=4, max_epochs=2, patience=2, seed=3)
    out = tmp_path / "run"
    valid = train_run(data, cfg, out)
    assert set(p.name for p in out.iterdir()) == {
        "model.pt",
        "history.tsv",
        "predictions.tsv",
        "valid_metrics.json",
    }
    hist = pd.read_csv(out / "history.tsv", sep="\t")
    assert list(hist.columns[:8]) == [
        "epoch",
        "split",
        "task",
        "l_tv",
        "l_ta",
        "l_fv",
        "l_fa",
        "total",
    ]
    assert len(hist) == 4 and set(hist.split) == {"train", "valid"}
    v = hist[hist.split == "valid"]
    best = json.loads((out / "valid_metrics.json").read_text())
    assert best["best_epoch"] == int(v.loc[v["mae"].idxmin(), "epoch"])  # picked on validation
    assert best["mae"] == pytest.approx(valid["mae"]) == pytest.approx(v["mae"].min(), abs=1e-5)
    pred = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert list(pred.columns) == ["clip_id", "label", "prediction", "s_ft", "s_fv", "s_fa"]
    assert len(pred) == 3 and (pred[["s_ft", "s_fv", "s_fa"]] > 0).all().all()

    # The test labels cannot influence which epoch is chosen or what is predicted.
    data.splits["test"].label = -data.splits["test"].label
    train_run(data, cfg, tmp_path / "flipped")
    flipped = json.loads((tmp_path / "flipped" / "valid_metrics.json").read_text())
    assert flipped["best_epoch"] == best["best_epoch"] and flipped["mae"] == best["mae"]
    fpred = pd.read_csv(tmp_path / "flipped" / "predictions.tsv", sep="\t")
    assert np.allclose(fpred.prediction, pred.prediction, atol=1e-5)
    assert np.allclose(fpred.label, -pred.label)

    m = evaluate_predictions(out / "predictions.tsv", out / "metrics.json", seed=3)
    assert m["mae"] == pytest.approx(np.mean(np.abs(pred.prediction - pred.label)))

    agg = aggregate_runs(
        [out / "metrics.json", out / "metrics.json"],
        tmp_path / "agg.json",
        dataset="t",
        variant="thne",
    )
    assert (
        agg["seeds"] == [3, 3]
        and agg["std"]["mae"] == 0.0
        and agg["mean"]["mae"] == pytest.approx(m["mae"], abs=1e-6)
    )


def test_stats_come_from_train_clips_only(dataset, tmp_path):
    from thne.features.normalise import fit_stats

    norm = fit_stats(dataset / "manifest.tsv", dataset / "audio.h5", tmp_path / "audio.stats.json")
    ff = read_h5(dataset / "audio.h5")
    train = np.concatenate([ff.features[f"v{i // 3}_{i}"] for i in range(6)])
    everything = np.concatenate(list(ff.features.values()))
    assert np.allclose(norm.mean, train.mean(0), atol=1e-5)
    assert not np.allclose(norm.mean, everything.mean(0), atol=1e-3)  # valid/test left out
    loaded = Normaliser.load(tmp_path / "audio.stats.json", ff.feature_names)
    assert np.array_equal(loaded.mean, norm.mean) and np.array_equal(loaded.std, norm.std)
    with pytest.raises(ValueError, match="other features"):
        Normaliser.load(tmp_path / "audio.stats.json", ["x"] * len(ff.feature_names))
    data = load(dataset, audio_stats=tmp_path / "audio.stats.json")
    assert np.array_equal(data.acoustic_norm.mean, norm.mean)


@pytest.mark.parametrize(
    ("variant", "absent"),
    [("no_deno2", {"l_tv", "l_ta"}), ("no_re", {"l_fv", "l_fa"}), ("text_only", {"l_tv", "l_fa"})],
)
def test_variant_loss_terms_are_absent_from_history(dataset, tmp_path, variant, absent):
    data = load(dataset)
    cfg = TrainConfig.preset(variant, batch_size=4, max_epochs=1, patience=1)
    train_run(data, cfg, tmp_path / variant)
    hist = pd.read_csv(tmp_path / variant / "history.tsv", sep="\t")
    assert not absent & set(hist.columns), hist.columns
    assert {"task", "total"} <= set(hist.columns)
    best = json.loads((tmp_path / variant / "valid_metrics.json").read_text())
    assert best["variant"] == variant


def _train_cli(dataset, out, *extra):
    import sys

    cmd = [sys.executable, "-m", "thne.cli", "train"]
    cmd += ["--manifest", str(dataset / "manifest.tsv"), "--text", str(dataset / "text.h5")]
    cmd += ["--audio", str(dataset / "audio.h5"), "--visual", str(dataset / "visual.h5")]
    cmd += ["--out-dir", str(out), "--variant", "thne", "--seed", "5", "--batch-size", "4"]
    cmd += ["--max-epochs", "8", "--patience", "8", "--device", "cpu", "--threads", "1", *extra]
    return cmd


def test_killed_run_resumes_to_the_same_result(dataset, tmp_path, capfd):
    """A run killed after its first epoch and started again ends as an uninterrupted one."""
    import shutil
    import signal
    import subprocess
    import time

    import torch

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_train_cli(dataset, whole), check=True, capture_output=True)
    assert not (whole / "checkpoint.pt").exists(), "a finished run removes its checkpoint"

    # A checkpoint at the end of every epoch, so the kill comes after a finished one.
    proc = subprocess.Popen(
        _train_cli(dataset, killed, "--checkpoint-every-s", "0"), stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint written"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch = torch.load(killed / "checkpoint.pt", weights_only=False)["epoch"]
    assert 1 <= epoch < 8 and not (killed / "predictions.tsv").exists()

    # A checkpoint written for another config is not resumed.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(killed / "checkpoint.pt", other / "checkpoint.pt")
    data = load(dataset)
    cfg = TrainConfig(seed=5, batch_size=4, max_epochs=2, patience=5, lr=0.002)
    train_run(data, cfg, other)
    assert "written for another config" in capfd.readouterr().err
    assert pd.read_csv(other / "history.tsv", sep="\t")["epoch"].min() == 1

    run = subprocess.run(_train_cli(dataset, killed), check=True, capture_output=True, text=True)
    assert f"resuming after epoch {epoch}" in run.stderr
    for name in ("history.tsv", "predictions.tsv"):
        assert (killed / name).read_text() == (whole / name).read_text(), name
    a = json.loads((whole / "valid_metrics.json").read_text())
    b = json.loads((killed / "valid_metrics.json").read_text())
    assert a == b
    assert not (killed / "checkpoint.pt").exists()


def test_a_preset_name_with_other_switches_is_refused():
    with pytest.raises(ValueError, match="TrainConfig.preset"):
        TrainConfig(variant="no_re")
    assert TrainConfig.preset("no_re").recovery is False
    assert TrainConfig(variant="my_variant", recovery=False).components.recovery is False


def test_unknown_variant_without_switches_is_refused(dataset, tmp_path):
    from thne.cli import main as thne

    args = ["train", "--manifest", str(dataset / "manifest.tsv"), "--text", "t", "--audio", "a"]
    args += ["--visual", "v", "--out-dir", str(tmp_path), "--variant", "no_re2"]
    with pytest.raises(SystemExit, match="variant 'no_re2' is not one of thne, no_deno1"):
        thne(args)


def test_fingerprint_follows_the_data(dataset):
    from thne.train.loop import run_fingerprint

    data = load(dataset)
    cfg = TrainConfig()
    before = run_fingerprint(cfg, data)
    assert run_fingerprint(cfg, data) == before
    data.splits["valid"].visual[0, 0, 0] += 1.0
    assert run_fingerprint(cfg, data) != before


def test_each_job_claims_its_own_gpu(tmp_path, monkeypatch):
    from thne.devices import claim_gpu, visible_gpus

    assert [claim_gpu(2, tmp_path), claim_gpu(2, tmp_path), claim_gpu(2, tmp_path)] == [0, 1, 0]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert visible_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,-1,1")
    assert visible_gpus() == 1
