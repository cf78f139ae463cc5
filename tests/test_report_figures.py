"""The report's figures (thne report-figures) on small real run outputs: each is a PNG with a
drawing on it, and a wrong input file is named in the error."""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from thne.cli import main as thne
from thne.data.manifest import Clip, write_manifest
from thne.evaluate.aggregate import aggregate_variants, evaluate_predictions
from thne.evaluate.report_figures import (
    FIGURES,
    FigureInputError,
    confusion7,
    write_report_figures,
)

LABELS = [2.0, -1.0, 0.4, 0.0, -3.0, 1.0, 2.6, -2.2]
SEEDS = (1, 2)


@pytest.fixture
def build(tmp_path):
    """A dataset's results as the workflow leaves them: thne and no_re, two seeds each, their
    predictions, histories, validation and test metrics, and variants.json."""
    clips = [
        Clip(f"v{i % 3}_{i}", f"v{i % 3}", 0, 1, "test", label, f"text {i}", "m.mp4")
        for i, label in enumerate(LABELS)
    ]
    write_manifest(tmp_path / "manifest.tsv", clips)
    rng = np.random.default_rng(0)
    runs = {"predictions": [], "metrics": [], "histories": [], "valid": []}
    for variant, noise in (("thne", 0.4), ("no_re", 0.8)):
        for seed in SEEDS:
            run = tmp_path / "results/demo/runs" / variant / f"seed{seed}"
            run.mkdir(parents=True)
            pd.DataFrame(
                {
                    "clip_id": [c.clip_id for c in clips],
                    "label": LABELS,
                    "prediction": np.array(LABELS) + rng.normal(0, noise, len(LABELS)),
                }
            ).to_csv(run / "predictions.tsv", sep="\t", index=False)
            evaluate_predictions(
                run / "predictions.tsv", run / "metrics.json", variant=variant, seed=seed
            )
            epochs = 4 + seed
            valid_mae = [1.2, 0.9, 0.8, 0.95, 1.0, 1.1][:epochs]
            rows = [
                {
                    "epoch": e,
                    "split": s,
                    "task": 1.0 / e,
                    "mae": valid_mae[e - 1] if s == "valid" else None,
                }
                for e in range(1, epochs + 1)
                for s in ("train", "valid")
            ]
            pd.DataFrame(rows).to_csv(run / "history.tsv", sep="\t", index=False)
            (run / "valid_metrics.json").write_text(
                json.dumps({"variant": variant, "seed": seed, "best_epoch": 3, "epochs": epochs})
            )
            runs["predictions"].append(run / "predictions.tsv")
            runs["metrics"].append(run / "metrics.json")
            if variant == "thne":
                runs["histories"].append(run / "history.tsv")
                runs["valid"].append(run / "valid_metrics.json")
    aggregate_variants(
        runs["metrics"],
        tmp_path / "variants.json",
        dataset="demo",
        variants=["thne", "no_re"],
        predictions=runs["predictions"],
        videos={c.clip_id: c.video_id for c in clips},
        resamples=200,
    )
    return tmp_path, runs


def figure_args(root, runs, **files):
    files = {
        "variants-json": root / "variants.json",
        "manifest": root / "manifest.tsv",
        **files,
    }
    args = ["report-figures"]
    for flag, path in files.items():
        args += [f"--{flag}", str(path)]
    for flag, key in (("predictions", "predictions"), ("histories", "histories")):
        args += [f"--{flag}", *map(str, runs[key])]
    args += ["--valid-metrics", *map(str, runs["valid"])]
    for name in FIGURES:
        args += [f"--out-{name}", str(root / "figures" / f"{name}.png")]
    return args


def test_each_figure_is_a_drawn_png(build):
    root, runs = build
    thne(figure_args(root, runs))
    for name in FIGURES:
        with Image.open(root / "figures" / f"{name}.png") as image:
            assert image.format == "PNG"
            width, height = image.size
            assert width >= 500 and height >= 300, (name, image.size)
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
            # Text, markers and anti-aliasing: hundreds of colours; a blank canvas has one.
            assert len(colours) > 100, (name, len(colours))
    assert not list((root / "figures").glob("*.tmp*"))


def test_confusion_uses_acc7s_classes():
    label = np.array([3.4, -0.5, 0.5, 1.5, -2.6])
    prediction = np.array([2.6, 0.4, -0.4, 2.5, -9.0])
    counts = confusion7(prediction, label)
    assert counts.sum() == 5 and counts[6, 6] == 1  # both clipped to 3
    assert counts[3, 3] == 2  # -0.5 and 0.5 round to 0, as do 0.4 and -0.4
    assert counts[5, 5] == 1  # 1.5 and 2.5 both round to 2 (half to even)
    assert counts[0, 0] == 1


def draw(root, runs, variants=None, manifest=None) -> None:
    """write_report_figures on the build's runs, with another variants.json or manifest."""
    write_report_figures(
        variants or root / "variants.json",
        runs["predictions"],
        runs["histories"],
        runs["valid"],
        manifest or root / "manifest.tsv",
        {n: root / f"{n}.png" for n in FIGURES},
    )


def test_a_variants_json_without_runs_is_named(build):
    root, runs = build
    bad = root / "bad.json"
    bad.write_text(json.dumps({"dataset": "demo", "variants": {"thne": {"mean": {}}}}))
    with pytest.raises(FigureInputError, match=str(bad)):
        draw(root, runs, variants=bad)


def test_a_predictions_file_without_its_columns_is_named(build):
    root, runs = build
    bad = runs["predictions"][1]
    pd.read_csv(bad, sep="\t").drop(columns="label").to_csv(bad, sep="\t", index=False)
    with pytest.raises(FigureInputError, match=f"{bad}.*'label'"):
        draw(root, runs)


def test_clips_missing_from_the_manifest_are_named(build):
    root, runs = build
    other = root / "other.tsv"
    write_manifest(other, [Clip("x_1", "x", 0, 1, "test", 0.0, "t", "m.mp4")])
    with pytest.raises(FigureInputError, match=f"{other}: no clip v"):
        draw(root, runs, manifest=other)


def test_a_history_of_another_run_is_named_and_the_cli_says_it_in_a_line(build, capsys):
    root, runs = build
    history = runs["histories"][0]
    frame = pd.read_csv(history, sep="\t")
    frame[frame["epoch"] < 3].to_csv(history, sep="\t", index=False)  # the best epoch is 3
    with pytest.raises(SystemExit):
        thne(figure_args(root, runs))
    err = capsys.readouterr().err
    assert f"{history}: no validation row of epoch 3" in err and "Traceback" not in err
    assert not (root / "figures" / "epochs.png").exists()
