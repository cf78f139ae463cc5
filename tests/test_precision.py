"""The bf16 path of a GPU run, exercised on the CPU (``thne.train.forward.CPU_BF16``): training
t-HNE and MMIM under bf16 autocast, ``thne predict`` reproducing such a run's predictions, and
the host copies of the splits freed once they are on the training device.
"""

import gc
import json
import weakref

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import load, make_dataset

from thne.data.manifest import read_manifest
from thne.predict.score import read_features, score_run
from thne.runs import load_run
from thne.train import forward, loop
from thne.train.config import TrainConfig
from thne.train.data import SplitTensors
from thne.train.forward import model_inputs
from thne.train.loop import train_run

# One worker under pytest-xdist runs this file's tests, so that its module fixtures are
# built once, not once on each worker.
pytestmark = pytest.mark.xdist_group("test_precision")

# bf16 keeps 8 bits of mantissa (relative rounding 2^-9 per value). Over one epoch (two
# steps, then validation) the losses of a bf16 run stay within this relative distance of the
# float32 run's; seen: at most 0.3 % (MMIM's acoustic CPC term).
LOSS_RTOL = 0.02
MODELS = {
    "thne": TrainConfig(batch_size=4, max_epochs=1, patience=1, seed=3),
    "mmim": TrainConfig.preset("mmim", batch_size=4, max_epochs=1, patience=1, seed=3),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("precision"))


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """Each model trained twice from the same seed: float32, and under CPU bf16 autocast."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as mp:
        for model, cfg in MODELS.items():
            for precision in ("float32", "bf16"):
                mp.setattr(forward, "CPU_BF16", precision == "bf16")
                train_run(load(dataset), cfg, root / model / precision)
    return root


def history(run):
    return pd.read_csv(run / "history.tsv", sep="\t")


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_bf16_training_stays_near_float32(runs, dataset, model, monkeypatch):
    """Losses of a bf16 run within LOSS_RTOL of the float32 run, every term and epoch; the
    weights stay float32, and under autocast the LSTM summaries and the prediction are float32
    (README, Precision) while the fused vector F is bf16, so bf16 was really on. Checked
    against the autocast as it was (bf16 on CUDA only): the bf16 run's losses equalled the
    float32 run's, for both models."""
    f32, bf16 = history(runs / model / "float32"), history(runs / model / "bf16")
    terms = [c for c in loop.LOSS_TERMS if c in f32 and f32[c].notna().all()]
    assert "total" in terms and "task" in terms
    assert not np.allclose(bf16[terms], f32[terms], rtol=1e-6, atol=0)  # not the same run
    np.testing.assert_allclose(bf16[terms], f32[terms], rtol=LOSS_RTOL, atol=1e-3)

    run = load_run(runs / model / "bf16")
    assert {v.dtype for v in run.model.state_dict().values() if v.is_floating_point()} == {
        torch.float32
    }
    monkeypatch.setattr(forward, "CPU_BF16", True)
    split = load(dataset).splits["valid"]
    with torch.no_grad(), forward.autocast(run.config, torch.device("cpu")):
        out = run.model(**model_inputs(split.batch(torch.arange(len(split)))))
    assert out.pred.dtype == torch.float32
    assert out.h_v.dtype == torch.float32 and out.h_a.dtype == torch.float32
    assert out.fused.dtype == torch.bfloat16


@pytest.mark.slow
def test_predict_equals_the_run_under_bf16(runs, dataset, monkeypatch):
    """``score_run`` runs a batch in the precision the run's evaluation ran in, which the run
    records, so a bf16 run's test clips get the predictions its predictions.tsv holds, on a
    device without bf16 autocast of its own (here the CPU with CPU_BF16 off, as a GPU run is
    scored on a laptop). Checked against score_run without the autocast (float32 always, as
    before): predictions off by up to 2e-4 (3 %)."""
    assert not forward.CPU_BF16
    run_dir = runs / "thne" / "bf16"
    assert json.loads((run_dir / "run.json").read_text())["precision"] == "bf16"
    float32 = json.loads((runs / "thne" / "float32" / "run.json").read_text())
    assert float32["precision"] == "float32"
    saved = pd.read_csv(run_dir / "predictions.tsv", sep="\t", dtype={"clip_id": str})
    clips = [c for c in read_manifest(dataset / "manifest.tsv") if c.split == "test"]
    scores = score_run(
        load_run(run_dir), read_features(clips, dataset / "audio.h5", dataset / "visual.h5")
    )
    got = pd.Series({s.clip_id: s.prediction for s in scores})
    # predictions.tsv holds 6 significant digits.
    np.testing.assert_allclose(got[saved.clip_id], saved.prediction, rtol=2e-6, atol=1e-6)


def test_host_copies_of_the_splits_are_freed_on_the_device(dataset, tmp_path, monkeypatch):
    """Once the splits are on the training device, nothing holds their host tensors: the
    caller's dataset holds the moved splits. A device move is stood in for by a copy (on the
    CPU, .to("cpu") moves nothing). Checked against the move that kept data.splits as it was
    (train, valid, test = (data.splits[s].to(dev) ...)): the host tensors stayed alive."""
    data = load(dataset)
    host = [
        weakref.ref(t)
        for split in data.splits.values()
        for t in vars(split).values()
        if isinstance(t, torch.Tensor)
    ]

    def to_copy(self, device):
        return SplitTensors(
            **{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()}
        )

    alive = []
    epoch = loop.train_epoch

    def first_epoch(*args, **kwargs):
        gc.collect()
        alive.append(sum(r() is not None for r in host))
        return epoch(*args, **kwargs)

    monkeypatch.setattr(SplitTensors, "to", to_copy)
    monkeypatch.setattr(loop, "train_epoch", first_epoch)
    train_run(data, TrainConfig(batch_size=4, max_epochs=1, patience=1), tmp_path / "run")
    assert alive == [0]
