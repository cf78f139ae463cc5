import functools
import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from thne.data.manifest import Clip, write_manifest
from thne.evaluate.aggregate import aggregate_runs, evaluate_predictions
from thne.features.normalise import Normaliser
from thne.features.store import Exclusion, extract_to_h5, read_h5
from thne.text.tokenize import tokenize_manifest
from thne.train.checkpoint import CHECKPOINT
from thne.train.config import TrainConfig
from thne.train.data import fit_length, load_dataset
from thne.train.loop import train_run

WORDS = {1.0: "great", -1.0: "awful", 0.0: "okay"}


@pytest.fixture
def dataset(tmp_path):
    return make_dataset(tmp_path)


def make_dataset(tmp_path):
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


def assert_standardised_with(data, raw, mean, std, modality="acoustic"):
    """Every clip of every split is ``(raw - mean) / std``, frame for frame."""
    for split in data.splits.values():
        x, lengths = getattr(split, modality), getattr(split, f"{modality}_len")
        for i, clip_id in enumerate(split.clip_ids):
            expected = (raw[clip_id] - mean) / std
            assert int(lengths[i]) == len(expected), clip_id
            np.testing.assert_allclose(
                x[i, : lengths[i]].numpy(), expected, rtol=1e-5, atol=1e-5, err_msg=clip_id
            )
            assert (x[i, lengths[i] :] == 0).all(), clip_id  # padding stays zero


def test_load_dataset_normalises_on_train_only(dataset):
    """Valid and test clips are standardised with the train split's statistics.

    Break caught: valid and test clips z-scored each with their own statistics."""
    data = load(dataset)
    assert {s: len(t) for s, t in data.splits.items()} == {"train": 6, "valid": 3, "test": 3}
    train = data.splits["train"]
    frames = np.concatenate([train.acoustic[i, : train.acoustic_len[i]].numpy() for i in range(6)])
    assert np.allclose(frames.mean(0), 0, atol=1e-5) and np.allclose(frames.std(0), 1, atol=1e-4)
    for modality, name in (("acoustic", "audio"), ("visual", "visual")):
        raw = read_h5(dataset / f"{name}.h5").features
        train_frames = np.concatenate([raw[c].astype(np.float64) for c in train.clip_ids])
        mean, std = train_frames.mean(0), train_frames.std(0)
        assert_standardised_with(data, raw, mean, std, modality)
        # The valid/test clips are not themselves standardised (their label cue shifts them).
        test = getattr(data.splits["test"], modality)[0, :3].numpy()
        assert not np.allclose(test, (raw["v3_9"][:3] - raw["v3_9"].mean(0)) / raw["v3_9"].std(0))


def test_clip_missing_from_a_feature_file_is_left_out_with_reason(dataset, tmp_path):
    from thne.data.manifest import read_manifest
    from thne.media import MediaError

    clips = read_manifest(dataset / "manifest.tsv")

    def flaky(clip):
        if clip.clip_id == "v0_1":
            raise MediaError(f"{clip.media}: cannot be decoded (test)")
        return np.ones((3, 6), np.float32), np.array([0.0, 0.7, 1.4], np.float32)

    # Six feature columns per frame, from a stand-in extractor named "t".
    extract = functools.partial(
        extract_to_h5, feature_names=list("abcdef"), extractor="t", config={}
    )
    excluded = extract(clips, tmp_path / "v2.h5", flaky, on_bad_clip="exclude")
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

    excluded = extract(clips[:1], tmp_path / "v4.h5", crashing, on_bad_clip="exclude")
    assert excluded == [Exclusion("v0_0", "ZeroDivisionError: boom")]
    with pytest.raises(ClipError, match="^clip v0_1: v1.mp4: cannot be decoded"):
        extract(clips, tmp_path / "v3.h5", flaky)
    assert not (tmp_path / "v3.h5").exists()  # no half-written output


@pytest.mark.slow
def test_train_run_writes_run_directory(dataset, tmp_path):
    data = load(dataset)
    cfg = TrainConfig(batch_size=4, max_epochs=2, patience=2, seed=3)
    out = tmp_path / "run"
    valid = train_run(data, cfg, out)
    assert set(p.name for p in out.iterdir()) == {
        "model.safetensors",
        "run.json",
        "encoder",
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

    # A second run: predictions moved by 0.5, as seed 4.
    (tmp_path / "run4").mkdir()
    pred.assign(prediction=pred.prediction + 0.5).to_csv(
        tmp_path / "run4" / "predictions.tsv", sep="\t", index=False
    )
    m4 = evaluate_predictions(tmp_path / "run4" / "predictions.tsv", tmp_path / "m4.json", seed=4)
    assert m4["mae"] == pytest.approx(np.mean(np.abs(pred.prediction + 0.5 - pred.label)))
    agg = aggregate_runs(
        [out / "metrics.json", tmp_path / "m4.json"],
        tmp_path / "agg.json",
        dataset="t",
        variant="thne",
    )
    assert agg["seeds"] == [3, 4] and m4["mae"] != pytest.approx(m["mae"])
    for key in ("mae", "corr", "acc7"):
        pair = [m[key], m4[key]]
        assert agg["mean"][key] == pytest.approx((pair[0] + pair[1]) / 2, abs=1e-6)
        # The sample standard deviation of two values is |a - b| / sqrt(2).
        assert agg["std"][key] == pytest.approx(abs(pair[0] - pair[1]) / np.sqrt(2), abs=1e-6)


def test_stats_come_from_train_clips_only(dataset, tmp_path):
    """Break caught: valid and test clips z-scored each with their own statistics."""
    from thne.features.streamed_fit import fit_stats

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
    assert_standardised_with(data, ff.features, norm.mean, norm.std)
    # Statistics given in a file are the ones applied, to every split.
    shifted = Normaliser(norm.mean + 1.0, norm.std * 2.0)
    shifted.save(tmp_path / "shifted.json", ff.feature_names)
    data = load(dataset, audio_stats=tmp_path / "shifted.json")
    assert_standardised_with(data, ff.features, shifted.mean, shifted.std)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("variant", "kept"),
    [
        ("no_deno2", {"l_fv", "l_fa"}),
        ("no_re", {"l_tv", "l_ta"}),
        ("text_only", set()),
        ("residual", {"l_tv", "l_ta", "l_fv", "l_fa"}),
    ],
)
def test_variant_loss_terms_in_history(dataset, tmp_path, variant, kept):
    """A variant's history has exactly its own loss terms, each finite and positive."""
    data = load(dataset)
    cfg = TrainConfig.preset(variant, batch_size=4, max_epochs=1, patience=1)
    train_run(data, cfg, tmp_path / variant)
    hist = pd.read_csv(tmp_path / variant / "history.tsv", sep="\t")
    terms = {"task", "l_tv", "l_ta", "l_fv", "l_fa", "total"}
    assert terms & set(hist.columns) == kept | {"task", "total"}, hist.columns
    assert (hist[sorted(kept | {"task", "total"})] > 0).all().all()
    best = json.loads((tmp_path / variant / "valid_metrics.json").read_text())
    assert best["variant"] == variant


def checkpoint_record(path):
    """The plain part of a checkpoint (epochs, history), read as training reads it."""
    return json.loads(torch.load(path, weights_only=True)["record"])


def assert_same_weights(a, b):
    """Two run directories hold bit-identical weights from the same epoch and config (but for
    how it was carried out: the checkpoint interval)."""
    from thne.runs import read_run
    from thne.train.loop import NOT_FINGERPRINTED

    (x, wx), (y, wy) = read_run(a), read_run(b)
    for info in (x, y):
        for key in NOT_FINGERPRINTED:
            del info["config"][key]
    assert x["epoch"] == y["epoch"] and x["config"] == y["config"]
    assert wx.keys() == wy.keys()
    for name, value in wx.items():
        assert torch.equal(value, wy[name]), name


class Interrupted(Exception):
    """Stands for a kill at a chosen point of a run."""


def interrupt_after_epoch(monkeypatch, epoch):
    """Stop train_run when it starts epoch ``epoch + 1``: epoch ``epoch``'s checkpoint is on
    disk, as after a kill between the two epochs."""
    from thne.train import loop

    real, calls = loop.train_epoch, []

    def train_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) > epoch:
            raise Interrupted
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", train_epoch)


def run_history(out):
    return pd.read_csv(out / "history.tsv", sep="\t")


# Checkpoints at the end of every epoch, so that a kill between two epochs can be staged.
EARLY = dict(seed=2, batch_size=4, lr=0.02, max_epochs=10, patience=2, checkpoint_every_s=0)


@pytest.fixture(scope="module")
def early(tmp_path_factory):
    """A run with patience 2 that stops early: its dataset, config and run directory."""
    root = tmp_path_factory.mktemp("early")
    data = load(make_dataset(root))
    cfg = TrainConfig(**EARLY)
    train_run(data, cfg, root / "whole")
    return data, cfg, root / "whole"


@pytest.mark.slow
def test_early_stopping_stops_patience_epochs_after_the_best(early):
    """With patience 2 a run stops two epochs after its best validation MAE, long before
    max_epochs, and keeps the best epoch's weights.

    Break caught: no early stop (the run goes on to max_epochs)."""
    _, cfg, run = early
    valid = run_history(run).query("split == 'valid'").set_index("epoch")["mae"]
    best = json.loads((run / "valid_metrics.json").read_text())
    last = int(valid.index.max())
    assert last < cfg.max_epochs, "the run was expected to stop early"
    assert best["best_epoch"] == int(valid.idxmin()) and last == best["best_epoch"] + 2
    assert best["epochs"] == last
    # No epoch before the last was patience epochs past a best.
    for epoch in valid.index[:-1]:
        best_so_far = int(valid[:epoch].idxmin())
        assert epoch - best_so_far < cfg.patience, epoch
    saved = json.loads((run / "run.json").read_text())
    assert saved["epoch"] == best["best_epoch"]


@pytest.mark.slow
def test_resume_after_a_non_improving_epoch_and_after_the_stop(early, tmp_path, monkeypatch):
    """A run killed after an epoch that did not improve, then again after its last epoch (early
    stopped, outputs not yet written), ends as the uninterrupted run: same history, same
    predictions, bit-identical weights.

    Breaks caught: a resumed run that forgets it had stopped and trains on; one that takes
    the last epoch's weights for the best ones."""
    from thne.train import loop

    data, cfg, whole = early
    valid = run_history(whole).query("split == 'valid'").set_index("epoch")["mae"]
    # The first epoch whose validation MAE is not a new best, and the last one.
    flat = next(e for e in valid.index[1:] if valid[e] >= valid[: e - 1].min())
    last = int(valid.index.max())
    assert 1 < flat < last

    out = tmp_path / "run"
    with monkeypatch.context() as m:
        interrupt_after_epoch(m, flat)
        with pytest.raises(Interrupted):
            train_run(data, cfg, out)
    assert checkpoint_record(out / CHECKPOINT)["epoch"] == flat

    with monkeypatch.context() as m:
        # Killed after the final checkpoint, before the run's files are written.
        def save_run(*args, **kwargs):
            raise Interrupted

        m.setattr(loop, "save_run", save_run)
        with pytest.raises(Interrupted):
            train_run(data, cfg, out)
    assert checkpoint_record(out / CHECKPOINT)["epoch"] == last
    assert not (out / "model.safetensors").exists()

    train_run(data, cfg, out)
    for file in ("history.tsv", "predictions.tsv", "valid_metrics.json"):
        assert (out / file).read_text() == (whole / file).read_text(), file
    assert_same_weights(whole, out)
    assert not (out / CHECKPOINT).exists()


def test_frame_cap_and_empty_sequences(dataset, tmp_path):
    """max_frames keeps evenly spaced frames from first to last; a clip with no frames at all
    becomes one zero step, and a model trains on it."""
    data = load(dataset, max_frames=4)
    raw = read_h5(dataset / "audio.h5").features
    norm = data.acoustic_norm
    for split in data.splits.values():
        for i, clip_id in enumerate(split.clip_ids):
            n = len(raw[clip_id])
            keep = np.linspace(0, n - 1, 4).round().astype(int)
            assert int(split.acoustic_len[i]) == 4 and keep[0] == 0 and keep[-1] == n - 1
            np.testing.assert_allclose(
                split.acoustic[i].numpy(), norm(raw[clip_id])[keep], rtol=1e-6, atol=1e-6
            )
        assert split.acoustic.shape[1] == 4

    # A visual file where one train clip has an empty sequence, as a feature file made
    # elsewhere may hold (extraction itself refuses frames that stop short of the clip's end).
    from thne.data.manifest import read_manifest

    def extract(clip):
        k = float(clip.clip_id.split("_")[1])
        return np.full((5, 3), k, np.float32), np.linspace(
            0, 2, 5, endpoint=False, dtype=np.float32
        )

    extract_to_h5(
        read_manifest(dataset / "manifest.tsv"),
        tmp_path / "empty.h5",
        extract,
        feature_names=["a", "b", "c"],
        extractor="t",
        config={},
    )
    with h5py.File(tmp_path / "empty.h5", "a") as h5:
        del h5["v0_1"]
        h5.create_dataset("v0_1/features", data=np.zeros((0, 3), np.float32))
        h5.create_dataset("v0_1/timestamps", data=np.zeros(0, np.float32))
    files = [dataset / n for n in ("manifest.tsv", "text.h5", "audio.h5")]
    data = load_dataset(*files, tmp_path / "empty.h5")
    train = data.splits["train"]
    row = train.clip_ids.index("v0_1")
    assert int(train.visual_len[row]) == 1 and (train.visual[row] == 0).all()
    assert data.dropped == []
    cfg = TrainConfig(batch_size=12, max_epochs=1, patience=1)
    metrics = train_run(data, cfg, tmp_path / "run")
    assert np.isfinite(metrics["mae"])


def _train_cli(dataset, out, *extra):
    import sys

    cmd = [sys.executable, "-m", "thne.cli", "train"]
    cmd += ["--manifest", str(dataset / "manifest.tsv"), "--text", str(dataset / "text.h5")]
    cmd += ["--audio", str(dataset / "audio.h5"), "--visual", str(dataset / "visual.h5")]
    cmd += ["--out-dir", str(out), "--variant", "thne", "--seed", "5", "--batch-size", "4"]
    cmd += ["--max-epochs", "4", "--patience", "4", "--device", "cpu", "--threads", "1", *extra]
    return cmd


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_result(dataset, tmp_path, capfd):
    """A run killed after its first epoch and started again ends as an uninterrupted one."""
    import shutil
    import signal
    import subprocess
    import time

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
    epoch = checkpoint_record(killed / "checkpoint.pt")["epoch"]
    assert 1 <= epoch < 4 and not (killed / "predictions.tsv").exists()

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
    assert_same_weights(whole, killed)
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


def test_thne_train_by_hand_takes_the_shipped_variants_loss_weights():
    """`thne train --variant residual` without --alpha trains with the alpha the workflow
    gives it (0.05, paper section 5.2), from thne/variants.py; a flag still wins. Before:
    TrainConfig's 0.3."""
    from thne.cli import build_parser
    from thne.stages.train import train_config

    def cfg(*flags):
        args = build_parser().parse_args(
            ["train", "--manifest", "m", "--text", "t", "--audio", "a", "--visual", "v"]
            + ["--out-dir", "o", *flags]
        )
        return train_config(args)

    assert cfg("--variant", "residual").alpha == 0.05
    assert cfg("--variant", "residual").residual is True
    assert cfg("--variant", "residual", "--alpha", "0.2").alpha == 0.2
    assert cfg("--variant", "thne").alpha == TrainConfig().alpha
    assert cfg("--variant", "no_re").recovery is False


def test_stats_file_is_normaliser_fit_of_every_train_row_bit_for_bit(dataset, tmp_path):
    """``thne stats`` reads one clip at a time (thne/features/streamed_fit.py); its file holds
    what Normaliser.fit of every train clip's rows at once gives, to the last bit."""
    from thne.data.manifest import read_manifest
    from thne.features.streamed_fit import fit_stats

    train = [c.clip_id for c in read_manifest(dataset / "manifest.tsv") if c.split == "train"]
    for name in ("audio", "visual"):
        ff = read_h5(dataset / f"{name}.h5", train)
        whole = Normaliser.fit(list(ff.features.values()), ff.feature_names)
        fit_stats(dataset / "manifest.tsv", dataset / f"{name}.h5", tmp_path / f"{name}.json")
        streamed = Normaliser.load(tmp_path / f"{name}.json", ff.feature_names)
        assert whole.presence == streamed.presence
        assert whole.mean.tobytes() == streamed.mean.tobytes()
        assert whole.std.tobytes() == streamed.std.tobytes()
