"""A run whose chosen epoch predicts about the same score for every test clip is reported as a
constant, in words, in its training log, its metrics.json and the tables; the choice of epoch
is left as it is."""

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import dataset, load  # noqa: F401 - the fixture is used by name

from conftest import BIN
from thne.evaluate.aggregate import aggregate_runs, aggregate_variants, evaluate_predictions
from thne.evaluate.metrics import CONSTANT_SHARE, constant_warning, spread_share
from thne.evaluate.tables import write_ablation, write_table
from thne.train.config import TrainConfig
from thne.train.loop import train_run

LABELS = np.array([-2.4, -1.0, -0.2, 0.0, 0.6, 1.4, 2.2, 3.0])


def write_run(folder, variant, seed, prediction):
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "clip_id": [f"v{i}_{i}" for i in range(len(LABELS))],
            "label": LABELS,
            "prediction": prediction,
        }
    ).to_csv(folder / "predictions.tsv", sep="\t", index=False)
    evaluate_predictions(
        folder / "predictions.tsv", folder / "metrics.json", variant=variant, seed=seed
    )
    return folder / "metrics.json"


def test_the_spread_share_and_its_threshold():
    """Break caught: the threshold compared with the predictions' std alone, not as a share of
    the labels' (a constant at the scale of MOSI's labels passes)."""
    assert spread_share(LABELS * 0.5, LABELS) == 0.5
    assert constant_warning(LABELS * 0.5, LABELS) is None
    assert constant_warning(LABELS * 5 * 1.1 * CONSTANT_SHARE, LABELS * 5) is None
    near = 0.1 + LABELS * 0.02
    assert "near-constant predictions" in constant_warning(near, LABELS)
    assert "0.020 of the labels'" in constant_warning(near, LABELS)
    # A wide-label set with a tiny spread, where the prediction std alone is over 0.1.
    assert constant_warning(LABELS * 5 * 0.05, LABELS * 5) is not None


def test_metrics_json_and_the_tables_name_a_constant_run(tmp_path):
    """Break caught: the warning written to metrics.json but not carried into table.md and
    ablation.md (a constant MMIM row looked like any other)."""
    model = [
        write_run(tmp_path / f"thne/seed{s}", "thne", s, LABELS * 0.6 + 0.05 * s) for s in (1, 2)
    ]
    mixed = [
        write_run(tmp_path / "mmim/seed1", "mmim", 1, LABELS * 0.5),
        write_run(tmp_path / "mmim/seed2", "mmim", 2, 0.2 + LABELS * 0.003),
    ]
    records = [json.loads(p.read_text()) for p in model + mixed]
    assert [("warning" in r) for r in records] == [False, False, False, True]
    assert records[3]["spread"] == round(float(np.std(LABELS * 0.003) / np.std(LABELS)), 6)
    # The choice is not changed: the metrics are the constant's own.
    assert records[3]["mae"] == float(np.abs(0.2 + LABELS * 0.003 - LABELS).mean())

    aggregate_runs(model, tmp_path / "metrics.json", dataset="demo", variant="thne")
    aggregate_variants(
        model + mixed, tmp_path / "variants.json", dataset="demo", variants=["thne", "mmim"]
    )
    features = "- Text encoder: test\n"
    table = write_table(
        tmp_path / "metrics.json", tmp_path / "table.md", dataset="demo", features=features,
        variants_json=tmp_path / "variants.json",
    )  # fmt: skip
    ablation = write_ablation(
        tmp_path / "variants.json", tmp_path / "ablation.md", dataset="demo", features=features
    )
    for text in (table, ablation):
        assert "**Warning: near-constant runs.**" in text
        assert "- `mmim` seed 2: near-constant predictions: their spread is 0.003" in text
        assert "`mmim` seed 1:" not in text and "`thne` seed" not in text


def test_the_evaluate_log_names_a_constant_run(tmp_path):
    """``thne evaluate``, as the workflow's evaluate rule runs it: the metrics line, then the
    warning naming the predictions file; none for a run that varies.

    Break caught: the warning written to metrics.json only, with the evaluate log silent."""
    for name, prediction in (("model", LABELS * 0.5), ("constant", 0.2 + LABELS * 0.003)):
        folder = tmp_path / name
        folder.mkdir()
        pd.DataFrame(
            {"clip_id": [f"v{i}_{i}" for i in range(len(LABELS))], "label": LABELS,
             "prediction": prediction}
        ).to_csv(folder / "predictions.tsv", sep="\t", index=False)  # fmt: skip
        proc = subprocess.run(
            [str(BIN / "thne"), "evaluate", "--predictions", str(folder / "predictions.tsv"),
             "--out", str(folder / "metrics.json"), "--variant", "mmim", "--seed", "2"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert proc.stderr.startswith("mae "), proc.stderr
        warned = f"warning: {folder / 'predictions.tsv'}: near-constant predictions" in proc.stderr
        assert warned == (name == "constant"), proc.stderr


@pytest.mark.slow
def test_the_training_log_says_when_the_chosen_epoch_is_a_constant(dataset, capfd):  # noqa: F811
    """One epoch at learning rate 0 leaves t-HNE at its initialisation, whose predictions barely
    vary: the run still ends normally, and its log says so.

    Break caught: the warning left to the evaluate step, with the training log silent."""
    cfg = TrainConfig.preset(
        "thne", max_epochs=1, lr=0.0, bert_lr=0.0, batch_size=4, checkpoint_every_s=0
    )
    torch.manual_seed(0)
    train_run(load(dataset), cfg, dataset / "run")
    err = capfd.readouterr().err
    assert "warning: epoch 1, chosen on validation MAE, gives near-constant predictions" in err
    pred = pd.read_csv(dataset / "run/predictions.tsv", sep="\t")
    assert spread_share(pred["prediction"], pred["label"]) < CONSTANT_SHARE
