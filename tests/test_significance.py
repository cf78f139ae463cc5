"""The paired bootstrap, and its place in variants.json, table.md and ablation.md."""

import json

import numpy as np
import pandas as pd
import pytest
from test_report import runs  # noqa: F401 - the fixture is used by name

from thne.cli import main as thne
from thne.evaluate.aggregate import aggregate_runs, aggregate_variants
from thne.evaluate.metrics import METRIC_KEYS, regression_metrics
from thne.evaluate.paper import TABLE3_MMIM
from thne.evaluate.significance import (
    compare,
    metrics_from_counts,
    seed_mean_predictions,
)


def labelled(n=400, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.round(rng.uniform(-3, 3, n) * 3) / 3
    truth[:15] = 0.0
    return rng, truth


def test_resample_metrics_equal_the_metrics_of_the_resampled_clips():
    rng, truth = labelled()
    pred = truth + rng.normal(0, 0.8, len(truth))
    pred[:5] = 0.0  # predictions exactly 0 fall on the non-negative side
    whole = metrics_from_counts([pred], truth, np.ones((1, len(truth))))[0]
    for key, value in regression_metrics(pred, truth).items():
        assert whole[key][0] == pytest.approx(value, abs=1e-10), key
    draw = rng.integers(0, len(truth), len(truth))
    counts = np.bincount(draw, minlength=len(truth))[None, :].astype(float)
    resampled = metrics_from_counts([pred], truth, counts)[0]
    for key, value in regression_metrics(pred[draw], truth[draw]).items():
        assert resampled[key][0] == pytest.approx(value, abs=1e-10), key


def test_an_identical_pair_differs_by_nothing():
    rng, truth = labelled()
    pred = truth + rng.normal(0, 0.8, len(truth))
    result = compare(pred, pred.copy(), truth, resamples=500)
    for key in METRIC_KEYS:
        lo, hi = result[key]["interval"]
        assert lo == hi == 0.0 and result[key]["thne_better"] == 0.0


def test_a_better_reference_gives_an_interval_clear_of_zero():
    rng, truth = labelled()
    good = truth + rng.normal(0, 0.1, len(truth))
    bad = truth + rng.normal(0, 1.5, len(truth))
    result = compare(bad, good, truth, resamples=2000)
    lo, hi = result["mae"]["interval"]
    assert 0 < lo < hi  # the variant's MAE is higher on every plausible test split
    for key in ("corr", "acc7", "acc2_has0", "f1_non0"):
        assert result[key]["interval"][1] < 0, key
    assert all(result[k]["thne_better"] > 0.99 for k in ("mae", "corr", "acc7"))


def test_the_same_seed_gives_the_same_interval():
    rng, truth = labelled()
    a = truth + rng.normal(0, 0.8, len(truth))
    b = truth + rng.normal(0, 0.8, len(truth))
    first = compare(a, b, truth, resamples=1000, seed=7)
    assert compare(a, b, truth, resamples=1000, seed=7) == first
    other = compare(a, b, truth, resamples=1000, seed=8)
    assert other["mae"]["interval"] != first["mae"]["interval"]
    lo, hi = first["mae"]["interval"]
    observed = np.mean(np.abs(a - truth)) - np.mean(np.abs(b - truth))
    assert first["mae"]["ensemble_difference"] == pytest.approx(observed, abs=1e-6)
    assert lo < observed < hi


def test_seed_means_need_the_same_clips(tmp_path):
    def write(name, clips, preds, labels=None):
        path = tmp_path / f"{name}.tsv"
        pd.DataFrame(
            {"clip_id": clips, "label": labels or [1.0] * len(clips), "prediction": preds}
        ).to_csv(path, sep="\t", index=False)
        return path

    a = write("a", ["c2", "c1"], [0.0, 1.0])
    b = write("b", ["c1", "c2"], [3.0, 2.0])
    mean = seed_mean_predictions([a, b])
    assert mean["clip_id"].tolist() == ["c1", "c2"] and mean["prediction"].tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="other test clips"):
        seed_mean_predictions([a, write("c", ["c1", "c3"], [0.0, 0.0])])
    with pytest.raises(ValueError, match="other labels"):
        seed_mean_predictions([a, write("d", ["c1", "c2"], [0.0, 0.0], [2.0, 1.0])])


def test_variants_json_and_tables_carry_the_comparison(runs):  # noqa: F811
    root = runs / "results" / "mosei" / "runs"
    metrics = sorted(str(p) for p in root.glob("*/seed*/metrics.json"))
    predictions = sorted(str(p) for p in root.glob("*/seed*/predictions.tsv"))
    out = runs / "v.json"
    thne(
        ["variants", "--runs", *metrics, "--predictions", *predictions, "--resamples", "300"]
        + ["--variants", "thne,no_re", "--out", str(out), "--dataset", "mosei"]
    )
    result = json.loads(out.read_text())
    assert "vs_thne" not in result["variants"]["thne"]
    stats = result["variants"]["no_re"]["vs_thne"]
    assert stats["mae"]["difference"] == pytest.approx(0.1)  # the runs' means differ by 0.1
    sig = result["significance"]
    assert sig["resamples"] == 300 and sig["n_clips"] == 6 and sig["seed"] == 0
    # no_re predicts exactly as thne does on these runs: no difference on any resample.
    assert stats["mae"]["interval"] == [0.0, 0.0] and stats["mae"]["thne_better"] == 0.0
    again = aggregate_variants(
        metrics,
        runs / "w.json",
        dataset="mosei",
        variants=["thne", "no_re"],
        predictions=predictions,
        resamples=300,
    )
    assert again["variants"]["no_re"]["vs_thne"] == stats
    with pytest.raises(ValueError, match="no predictions.tsv given"):
        aggregate_variants(
            metrics,
            runs / "x.json",
            dataset="mosei",
            variants=["thne", "no_re"],
            predictions=predictions[:1],
        )

    common = ["--visual", str(runs / "visual.h5"), "--audio", str(runs / "audio.h5")]
    common += ["--encoder", "bert-base-uncased", "--dataset", "mosei"]
    thne(["ablation", "--variants-json", str(out), "--out", str(runs / "a.md"), *common])
    ablation = (runs / "a.md").read_text()
    assert "## Differences from t-HNE" in ablation
    assert "| w/o Re (`no_re`) | +0.100 [+0.000, +0.000] 0% |" in ablation
    assert "paired bootstrap over test clips" in ablation and "300 resamples" in ablation

    # table.md: the paper's MMIM row quoted, ours beside it, and the differences.
    mmim = {**result["variants"]["no_re"], "seeds": [1, 2]}
    result["variants"]["mmim"] = mmim
    result["variants"]["mmim"]["vs_thne"] = stats
    out.write_text(json.dumps(result))
    thne_runs = sorted(str(p) for p in root.glob("thne/seed*/metrics.json"))
    aggregate_runs(thne_runs, runs / "metrics.json", dataset="mosei", variant="thne")
    thne(
        ["table", "--metrics", str(runs / "metrics.json"), "--variants-json", str(out)]
        + ["--out", str(runs / "t.md"), *common]
    )
    table = (runs / "t.md").read_text()
    quoted = "| MMIM | paper, Table 3, quoted (from Xie et al., 2024) | 0.532 | 0.765 | 53.93 |"
    assert quoted in table and TABLE3_MMIM["mosei"]["mae"] == 0.532
    assert "| MMIM | thne `mmim`, 2 seeds (1, 2) | 0.810 ± 0.014 |" in table
    assert "| MMIM (`mmim`) | +0.100 [+0.000, +0.000] 0% |" in table
