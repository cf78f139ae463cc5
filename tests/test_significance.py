"""The paired bootstrap, and its place in variants.json, table.md and ablation.md."""

import json

import numpy as np
import pandas as pd
import pytest
from test_report import runs  # noqa: F401 - the fixture is used by name

from thne.cli import main as thne
from thne.data.clips import Clip
from thne.data.manifest import write_manifest
from thne.evaluate.aggregate import aggregate_runs, aggregate_variants, evaluate_predictions
from thne.evaluate.metrics import METRIC_KEYS, regression_metrics
from thne.evaluate.paper import TABLE3_MMIM
from thne.evaluate.significance import (
    UNITS,
    compare,
    compare_many,
    compare_variants,
    metrics_from_counts,
    seed_mean_predictions,
)
from thne.evaluate.tables import differences
from thne.stages._args import BOOTSTRAP_UNITS


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
    result = compare(pred, pred.copy(), truth, unit="clip", resamples=500)
    for key in METRIC_KEYS:
        lo, hi = result[key]["interval"]
        assert lo == hi == 0.0 and result[key]["thne_better"] == 0.0


def test_a_better_reference_gives_an_interval_clear_of_zero():
    rng, truth = labelled()
    good = truth + rng.normal(0, 0.1, len(truth))
    bad = truth + rng.normal(0, 1.5, len(truth))
    result = compare(bad, good, truth, unit="clip", resamples=2000)
    lo, hi = result["mae"]["interval"]
    assert 0 < lo < hi  # the variant's MAE is higher on every plausible test split
    for key in ("corr", "acc7", "acc2_has0", "f1_non0"):
        assert result[key]["interval"][1] < 0, key
    assert all(result[k]["thne_better"] > 0.99 for k in ("mae", "corr", "acc7"))


def test_the_same_seed_gives_the_same_interval():
    rng, truth = labelled()
    a = truth + rng.normal(0, 0.8, len(truth))
    b = truth + rng.normal(0, 0.8, len(truth))
    first = compare(a, b, truth, unit="clip", resamples=1000, seed=7)
    assert compare(a, b, truth, unit="clip", resamples=1000, seed=7) == first
    other = compare(a, b, truth, unit="clip", resamples=1000, seed=8)
    assert other["mae"]["interval"] != first["mae"]["interval"]
    lo, hi = first["mae"]["interval"]
    observed = np.mean(np.abs(a - truth)) - np.mean(np.abs(b - truth))
    assert first["mae"]["ensemble_difference"] == pytest.approx(observed, abs=1e-6)
    assert first["mae"]["difference"] == pytest.approx(observed, abs=1e-6)  # one seed each
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


def consistent(folder, shift):
    """The fixture's runs with each variant's predictions moved up by ``shift[variant]`` (every
    error is >= 0, so its MAE moves by as much) and metrics.json recomputed from them."""
    root = folder / "results" / "mosei" / "runs"
    for variant, up in shift.items():
        for run in sorted(root.glob(f"{variant}/seed*")):
            pred = pd.read_csv(run / "predictions.tsv", sep="\t")
            pred["prediction"] += up
            pred.to_csv(run / "predictions.tsv", sep="\t", index=False)
            seed = int(run.name.removeprefix("seed"))
            evaluate_predictions(
                run / "predictions.tsv", run / "metrics.json", variant=variant, seed=seed
            )
    metrics = sorted(str(p) for p in root.glob("*/seed*/metrics.json"))
    predictions = sorted(str(p) for p in root.glob("*/seed*/predictions.tsv"))
    return root, metrics, predictions


def test_variants_json_and_tables_carry_the_comparison(runs):  # noqa: F811
    root, metrics, predictions = consistent(runs, {"thne": 0.0, "no_re": 0.1})
    out = runs / "v.json"
    thne(
        ["variants", "--runs", *metrics, "--predictions", *predictions, "--resamples", "300"]
        + ["--bootstrap-unit", "clip"]
        + ["--variants", "thne,no_re", "--out", str(out), "--dataset", "mosei"]
    )
    result = json.loads(out.read_text())
    assert "vs_thne" not in result["variants"]["thne"]
    stats = result["variants"]["no_re"]["vs_thne"]
    assert stats["mae"]["difference"] == pytest.approx(0.1)  # every prediction 0.1 higher
    sig = result["significance"]
    assert sig["resamples"] == 300 and sig["n_clips"] == 6 and sig["seed"] == 0
    # Every error grew by 0.1: the MAE difference is 0.1 on every resample.
    assert stats["mae"]["interval"] == [0.1, 0.1] and stats["mae"]["thne_better"] == 1.0
    again = aggregate_variants(
        metrics,
        runs / "w.json",
        dataset="mosei",
        variants=["thne", "no_re"],
        predictions=predictions,
        unit="clip",
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
            unit="clip",
        )
    # metrics.json out of step with predictions.tsv: the printed means would not be what the
    # interval is about.
    stale = root / "no_re" / "seed1" / "metrics.json"
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "mae": 9.0}))
    with pytest.raises(ValueError, match="no_re mae: the runs' metrics.json give"):
        aggregate_variants(
            metrics, runs / "y.json", dataset="mosei", variants=["thne", "no_re"],
            predictions=predictions, unit="clip", resamples=10,
        )  # fmt: skip

    common = ["--visual", str(runs / "visual.h5"), "--audio", str(runs / "audio.h5")]
    common += ["--encoder", "bert-base-uncased", "--dataset", "mosei"]
    thne(["ablation", "--variants-json", str(out), "--out", str(runs / "a.md"), *common])
    ablation = (runs / "a.md").read_text()
    assert "## Differences from t-HNE" in ablation
    assert "| w/o Re (`no_re`) | +0.100 [+0.100, +0.100] 100% |" in ablation
    assert "paired bootstrap over test clips" in ablation and "300 resamples" in ablation
    assert "interval of that same mean-over-seeds difference" in ablation

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
    mmim_mae = result["variants"]["mmim"]["mean"]["mae"]
    assert f"| MMIM | thne `mmim`, 2 seeds (1, 2) | {mmim_mae:.3f} ± " in table
    assert "| MMIM (`mmim`) | +0.100 [+0.100, +0.100] 100% |" in table


def seeds_that_disagree(n=200):
    """Truth and three seeds of two models on ``n`` clips. The reference's seeds err
    independently, so averaging them cancels much of their error; the variant's seeds are one
    prediction three times. Mean over seeds, the variant is far better (MAE 0.32 lower);
    seed-averaged, it is worse (0.17 higher)."""
    rng, truth = labelled(n, seed=3)
    reference = [truth + rng.normal(0, 1.5, n) for _ in range(3)]
    one = truth + rng.normal(0, 1.0, n)
    return truth, {"thne": reference, "variant": [one.copy() for _ in range(3)]}


@pytest.mark.parametrize("unit", ["clip", "video"])
def test_each_interval_holds_its_point_estimate(unit):
    """For every metric of every variant, the printed difference lies inside its interval,
    drawing clips or whole videos (40 of 5 clips); here also for a variant close to the
    reference and one seed-averaged the other way.

    Break caught: intervals bootstrapped from the seed-averaged predictions (the former
    method), which scatter around the ensemble difference: the variant's MAE difference of
    -0.320 then lies below its interval, whose lower end is +0.068."""
    truth, models = seeds_that_disagree()
    rng = np.random.default_rng(5)
    models["close"] = [p + rng.normal(0, 0.3, len(truth)) for p in models["thne"]]
    models["sign_noise"] = [
        truth * 0.2 + rng.normal(0, 0.8, len(truth)) for _ in range(3)
    ]  # fmt: skip
    videos = [f"v{i // 5}" for i in range(len(truth))]
    result = compare_many(models, truth, reference="thne", unit=unit, videos=videos, resamples=2000)
    assert set(result) == {"variant", "close", "sign_noise"}
    for variant, stats in result.items():
        for key in METRIC_KEYS:
            lo, hi = stats[key]["interval"]
            assert lo <= stats[key]["difference"] <= hi, (variant, key, stats[key])


def test_the_printed_difference_is_the_mean_over_seeds(tmp_path):
    """Where the seeds' mean and the seed-averaged predictions disagree, variants.json's
    ``difference`` and the table's cell are the mean over seeds of each seed's metric, and the
    ensemble's difference is kept under its own name.

    Break caught: the difference taken from the seed-averaged predictions (+0.173, outside
    the interval [-0.425, -0.208]; aggregate_variants then also refuses it as out of step
    with the runs' metrics.json)."""
    truth, models = seeds_that_disagree()
    clips = [f"c{i:03d}" for i in range(len(truth))]
    metrics, predictions = write_runs(tmp_path, truth, models, clips)
    result = aggregate_variants(
        metrics, tmp_path / "v.json", dataset="d", variants=["thne", "variant"],
        predictions=predictions, unit="clip", resamples=1000,
    )  # fmt: skip
    mae = result["variants"]["variant"]["vs_thne"]["mae"]

    def seed_mean(seeds):
        return np.mean([regression_metrics(p, truth)["mae"] for p in seeds])

    direct = seed_mean(models["variant"]) - seed_mean(models["thne"])
    ensemble = (
        regression_metrics(np.mean(models["variant"], axis=0), truth)["mae"]
        - regression_metrics(np.mean(models["thne"], axis=0), truth)["mae"]
    )
    assert direct < -0.3 and ensemble > 0  # the two readings disagree in sign
    assert mae["difference"] == pytest.approx(direct, abs=1e-6)
    assert mae["ensemble_difference"] == pytest.approx(ensemble, abs=1e-6)
    lo, hi = mae["interval"]
    assert lo <= direct <= hi and hi < 0  # t-HNE's seeds are worse, resample after resample
    assert mae["thne_better"] == 0.0
    table = differences(result)
    assert f"| variant (`variant`) | {direct:+.3f} [{lo:+.3f}, {hi:+.3f}] 0% |" in table


def test_the_clip_unit_gives_the_former_numbers():
    """unit="clip" draws the clips as the bootstrap did before videos were drawn: the same
    random draws, the same numbers (pinned from the code before the change), with or without
    the video ids.

    Break caught: any change to the clip draws or to the metrics' sums, e.g. dividing by the
    clip count n differently or drawing videos under unit="clip" (the MAE interval then
    becomes [-0.137, -0.014])."""
    rng = np.random.default_rng(11)
    truth = np.round(rng.uniform(-3, 3, 300) * 3) / 3
    a = [truth + rng.normal(0, 0.8, 300) for _ in range(2)]
    b = [truth + rng.normal(0, 0.9, 300) for _ in range(2)]
    videos = [f"v{i % 30}" for i in range(300)]
    for ids in (None, videos):
        r = compare(a, b, truth, unit="clip", videos=ids, resamples=400, seed=3)
        assert r["mae"] == {
            "difference": -0.075716, "interval": [-0.132992, -0.022874],
            "thne_better": 0.0075, "ensemble_difference": -0.066342,
        }  # fmt: skip
        assert r["acc7"]["interval"] == [-0.0, 0.101667] and r["acc7"]["thne_better"] == 0.025
        assert r["f1_non0"]["interval"] == [-0.037691, 0.028559]
        assert r["f1_non0"]["thne_better"] == 0.615


def clustered(videos=40, clips=15, seed=0):
    """Truth and one seed each of two models on ``videos`` x ``clips`` clips whose variant
    errs by a shared per-video amount (a speaker the variant reads badly) on top of clip
    noise, and each clip's video id."""
    rng = np.random.default_rng(seed)
    n = videos * clips
    truth = np.round(rng.uniform(-3, 3, n) * 3) / 3
    video = np.repeat(np.arange(videos), clips)
    shared = rng.normal(0, 0.8, videos)[video]
    reference = truth + rng.normal(0, 0.5, n)
    variant = truth + shared + rng.normal(0, 0.5, n)
    return truth, variant, reference, [f"v{v:02d}" for v in video]


def test_drawing_videos_widens_the_interval_of_clustered_errors():
    """Where the clips of a video err together, the interval over videos is clearly wider
    than the one over clips, which takes the 15 clips of a video for 15 independent ones.

    Break caught: clip counts not taken from the drawn videos (e.g. drawing clips under
    unit="video") gives the clip interval again, ratio 1.0; measured here 2.7."""
    truth, variant, reference, videos = clustered()
    width = {}
    for unit in ("clip", "video"):
        r = compare(variant, reference, truth, unit=unit, videos=videos, resamples=2000)
        lo, hi = r["mae"]["interval"]
        assert lo <= r["mae"]["difference"] <= hi
        width[unit] = hi - lo
    assert width["video"] > 1.6 * width["clip"], width


def test_a_video_resample_divides_by_its_own_clip_count():
    """Videos of unequal length: a resample's metrics are those of the clips it drew, one
    video's clips as often as the video was drawn, however many clips that makes.

    Break caught: dividing by the test split's clip count n instead of the resample's total
    (this resample holds 90 clips, not 60: its MAE comes out 1.5 times too high)."""
    rng, truth = labelled(60)
    pred = truth + rng.normal(0, 0.8, len(truth))
    video = np.array([0] * 30 + [1] * 10 + [2] * 20)
    drawn = np.array([2, 0, 1])  # the 30-clip video twice, the 20-clip one once
    counts = drawn[video][None, :].astype(float)
    got = metrics_from_counts([pred], truth, counts)[0]
    rows = np.repeat(np.arange(len(truth)), drawn[video])
    for key, value in regression_metrics(pred[rows], truth[rows]).items():
        assert got[key][0] == pytest.approx(value, abs=1e-10), key


def write_runs(folder, truth, models, clips):
    """Each model's seeds as runs under ``folder``: predictions.tsv and metrics.json."""
    metrics, predictions = [], []
    for variant, seeds in models.items():
        for seed, pred in enumerate(seeds, start=1):
            run = folder / variant / f"seed{seed}"
            run.mkdir(parents=True)
            frame = pd.DataFrame({"clip_id": clips, "label": truth, "prediction": pred})
            frame.to_csv(run / "predictions.tsv", sep="\t", index=False)
            evaluate_predictions(
                run / "predictions.tsv", run / "metrics.json", variant=variant, seed=seed
            )
            metrics.append(run / "metrics.json")
            predictions.append(run / "predictions.tsv")
    return metrics, predictions


def manifest_of(path, clips, videos):
    write_manifest(
        path,
        [
            Clip(c, v, 0.0, 1.0, "test", 0.0, "a clip", "")
            for c, v in zip(clips, videos, strict=True)
        ],
    )
    return path


def test_variants_json_records_the_unit_and_caution(tmp_path):
    """``thne variants`` draws whole videos by default, reading each clip's video from the
    manifest; variants.json and the table under the ablation say so, and with fewer than 20
    test videos the result is marked unreliable with the caution.

    Break caught: the unit or the video count not reaching variants.json (a KeyError below),
    the flag ignored (unit "clip" recorded, or the clip interval: widths then equal), or no
    caution for 12 videos."""
    truth, variant, reference, videos = clustered(videos=12, clips=15, seed=2)
    clips = [f"c{i:03d}" for i in range(len(truth))]
    metrics, predictions = write_runs(
        tmp_path, truth, {"thne": [reference], "no_re": [variant]}, clips
    )
    manifest = manifest_of(tmp_path / "manifest.tsv", clips, videos)
    common = ["--runs", *map(str, metrics), "--predictions", *map(str, predictions)]
    common += ["--variants", "thne,no_re", "--dataset", "d", "--resamples", "500"]
    thne(["variants", *common, "--manifest", str(manifest), "--out", str(tmp_path / "v.json")])
    thne(["variants", *common, "--bootstrap-unit", "clip", "--out", str(tmp_path / "c.json")])
    by_video = json.loads((tmp_path / "v.json").read_text())
    by_clip = json.loads((tmp_path / "c.json").read_text())
    sig = by_video["significance"]
    assert sig["unit"] == "video" and sig["n_videos"] == 12 and sig["n_clips"] == 180
    assert "over test videos" in sig["method"]
    assert sig["reliable"] is False and "fewer than 20" in sig["caution"]
    assert "Cameron, Gelbach & Miller 2008" in sig["caution"]
    assert by_clip["significance"]["unit"] == "clip" and by_clip["significance"]["n_videos"] is None

    def width(result):
        lo, hi = result["variants"]["no_re"]["vs_thne"]["mae"]["interval"]
        return hi - lo

    assert width(by_video) > width(by_clip)
    text = differences(by_video)
    assert "drawing whole videos (12 test videos, 180 clips)" in text
    assert f"**{sig['caution']}**" in text
    assert "Unreliable" not in differences(by_clip)  # no video ids: no claim either way
    with pytest.raises(ValueError, match="needs each test clip's video id"):
        aggregate_variants(
            metrics, tmp_path / "x.json", dataset="d", variants=["thne", "no_re"],
            predictions=predictions,
        )  # fmt: skip
    assert BOOTSTRAP_UNITS == UNITS  # the parser's choices are the bootstrap's units


def test_twenty_videos_are_enough(tmp_path):
    """At 20 test videos the result claims no caution; the clip unit with the video ids known
    is judged by the same count.

    Break caught: a threshold off by one (reliable false at 20), or the clip unit escaping the
    caution when its clips come from too few videos."""
    rng, truth = labelled(200)
    clips = [f"c{i:03d}" for i in range(len(truth))]
    models = {name: [truth + rng.normal(0, 0.8, len(truth))] for name in ("thne", "other")}
    _, predictions = write_runs(tmp_path, truth, models, clips)
    paths = {"thne": predictions[:1], "other": predictions[1:]}
    for count, reliable in ((20, True), (19, False)):
        videos = {c: f"v{i % count}" for i, c in enumerate(clips)}
        for unit in ("video", "clip"):
            r = compare_variants(paths, unit=unit, videos=videos, resamples=50)
            assert r["reliable"] is reliable and ("caution" in r) is not reliable, (count, unit)
            assert r["n_videos"] == count
