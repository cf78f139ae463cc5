"""The grid search's selection (``thne grid-select``) and its report (``thne grid-report``), on
synthetic run folders: no training, no workflow run."""

from __future__ import annotations

import builtins
import io
import json
import math
import os
import pathlib
import re
import statistics

import numpy as np
import pandas as pd
import pytest

from thne.cli import main as thne
from thne.data.clips import Clip
from thne.data.manifest import write_manifest
from thne.evaluate.aggregate import aggregate_variants, evaluate_predictions
from thne.evaluate.grid import RULE, GridError, select
from thne.evaluate.grid_figure import plot_grid
from thne.evaluate.grid_report import choice_table
from thne.evaluate.paper import TABLE3, TABLE3_MMIM
from thne.grid import grid_points

AXES = {"batch_size": [32, 64], "lr": [5.0e-4, 1.0e-3], "alpha": [0.1, 0.3]}
POINTS = list(grid_points(AXES))  # grid order
SEEDS = (1, 2)


def write_grid(grid_dir, mae, corr=None, seeds=SEEDS, axes=AXES, variant="thne"):
    """A grid's run folders: ``valid_metrics.json`` with ``mae(name, seed)`` and
    ``corr(name, seed)`` (default 0.5), and a test ``predictions.tsv`` in each run where the
    point that is worst on validation is perfect on test. Returns the valid_metrics paths."""
    names = list(grid_points(axes))
    worst = max(names, key=lambda n: sum(mae(n, s) for s in seeds))
    paths = []
    for name in names:
        for seed in seeds:
            run = grid_dir / name / f"seed{seed}"
            run.mkdir(parents=True, exist_ok=True)
            value = 0.5 if corr is None else corr(name, seed)
            metrics = {"variant": variant, "seed": seed, "best_epoch": 3, "epochs": 8}
            metrics |= {"mae": mae(name, seed), "acc7": 0.3}
            if value != "absent":
                metrics["corr"] = value
            (run / "valid_metrics.json").write_text(json.dumps(metrics))
            labels = np.linspace(-3, 3, 12)
            preds = labels if name == worst else labels[::-1]
            pd.DataFrame({"clip_id": [f"c{i}" for i in range(12)], "label": labels,
                          "prediction": preds}).to_csv(run / "predictions.tsv", sep="\t",
                                                       index=False)  # fmt: skip
            paths.append(str(run / "valid_metrics.json"))
    return paths


def grid_select(grid_dir, runs, out, seeds=SEEDS, axes=AXES, variant="thne"):
    thne(
        ["grid-select", "--axes", json.dumps(axes), "--seeds", ",".join(map(str, seeds)),
         "--grid-dir", str(grid_dir), "--runs", *map(str, runs), "--dataset", "demo",
         "--variant", variant, "--out", str(out)]
    )  # fmt: skip
    return json.loads(pathlib.Path(out).read_text())


def test_the_lowest_mean_validation_mae_over_the_seeds_wins(tmp_path, capsys):
    """A point best on one seed loses to one better on the mean. Checked against a break:
    ranking by each point's lowest seed MAE instead of its mean chose the one-seed winner."""
    one_seed, on_mean = POINTS[1], POINTS[6]
    values = {(one_seed, 1): 0.50, (one_seed, 2): 0.90, (on_mean, 1): 0.60, (on_mean, 2): 0.62}
    runs = write_grid(tmp_path / "grid", lambda n, s: values.get((n, s), 0.8 + 0.01 * s))
    best = grid_select(tmp_path / "grid", runs, tmp_path / "best.json")
    assert best["name"] == on_mean
    assert best["point"] == {"batch_size": 64, "lr": 0.001, "alpha": 0.1}
    assert isinstance(best["point"]["batch_size"], int)
    assert best["valid"]["mae"] == {"mean": 0.61, "std": round(statistics.stdev([0.6, 0.62]), 6)}
    assert best["rule"] == RULE and best["seeds"] == [1, 2]
    assert [p["rank"] for p in best["points"]] == list(range(1, len(POINTS) + 1))
    assert [p["name"] for p in best["points"]][:2] == [on_mean, one_seed]
    means = [p["mae"]["mean"] for p in best["points"]]
    assert means == sorted(means) and len(best["points"]) == len(POINTS)
    assert [s["seed"] for s in best["points"][0]["seeds"]] == [1, 2]
    assert f"chose {on_mean}" in capsys.readouterr().err


def test_ties_go_to_the_higher_corr_then_to_the_earlier_point(tmp_path):
    """Three points tie on MAE to 6 decimals. The higher Corr wins, and of two with the same
    Corr the earlier in grid order. Checked against three breaks, each changing the order:
    ranking by the unrounded means (rounding removed from summary() and the sort key),
    dropping Corr from the sort key, and reversing the grid order in it."""
    mae = {POINTS[2]: 0.7000001, POINTS[5]: 0.7000004, POINTS[6]: 0.7000001}
    corr = {POINTS[2]: 0.4, POINTS[5]: 0.6, POINTS[6]: 0.6}
    runs = write_grid(
        tmp_path / "grid", lambda n, s: mae.get(n, 0.9), lambda n, s: corr.get(n, 0.9)
    )
    best = grid_select(tmp_path / "grid", runs, tmp_path / "best.json")
    assert [p["name"] for p in best["points"][:3]] == [POINTS[5], POINTS[6], POINTS[2]]
    assert best["name"] == POINTS[5]


def test_an_undefined_corr_counts_as_the_worst_and_is_written_as_null(tmp_path):
    """Tied on MAE: a point with a NaN Corr on one seed, one with null, one without the key
    (all validation labels 0) rank after a negative Corr, among themselves by grid order, and
    best.json holds no NaN. Checked against a break: treating an undefined Corr as 0 ranked
    POINTS[0] (NaN) first, as 0 > -0.9."""
    corr = {
        (POINTS[0], 2): float("nan"),
        (POINTS[1], 1): None,
        (POINTS[2], 1): "absent",
        (POINTS[2], 2): "absent",
        (POINTS[3], 1): -0.9,
        (POINTS[3], 2): -0.9,
    }
    runs = write_grid(
        tmp_path / "grid",
        lambda n, s: 0.7 if n in POINTS[:4] else 0.9,
        lambda n, s: corr.get((n, s), 0.5),
    )
    best = grid_select(tmp_path / "grid", runs, tmp_path / "best.json")
    assert [p["name"] for p in best["points"][:4]] == [POINTS[3], *POINTS[:3]]
    assert best["points"][1]["corr"] == {"mean": None, "std": None}
    assert best["points"][1]["seeds"][1]["corr"] is None

    def no_constants(token):
        raise AssertionError(f"best.json holds {token}")

    json.loads((tmp_path / "best.json").read_text(), parse_constant=no_constants)


@pytest.fixture
def opened(monkeypatch):
    """Every path opened through Python's file functions while the test runs."""
    seen: list[str] = []

    def recording(original):
        def wrapper(file, *args, **kwargs):
            if isinstance(file, str | bytes | os.PathLike):
                seen.append(os.fsdecode(file))
            return original(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", recording(builtins.open))
    monkeypatch.setattr(io, "open", recording(io.open))
    monkeypatch.setattr(os, "open", recording(os.open))
    read_text = pathlib.Path.read_text
    read_bytes = pathlib.Path.read_bytes

    def path_read_text(self, *args, **kwargs):
        seen.append(str(self))
        return read_text(self, *args, **kwargs)

    def path_read_bytes(self, *args, **kwargs):
        seen.append(str(self))
        return read_bytes(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", path_read_text)
    monkeypatch.setattr(pathlib.Path, "read_bytes", path_read_bytes)
    return seen


def test_selection_never_opens_a_test_prediction(tmp_path, opened):
    """Every run's predictions.tsv makes the validation-worst point perfect on test and is
    unreadable (mode 000); the choice is the same as with no predictions at all, and of the
    grid's files only valid_metrics.json were opened. Checked against two breaks in _read_run:
    reading the run's predictions.tsv with open(), and scoring the run by its test MAE read
    with pandas.read_csv; both were caught by the files recorded."""
    grid = tmp_path / "grid"
    runs = write_grid(grid, lambda n, s: 0.5 + 0.01 * POINTS.index(n) + 0.001 * s)
    for tsv in grid.rglob("predictions.tsv"):
        tsv.chmod(0)
    opened.clear()  # writing the grid opened its files
    best = grid_select(grid, runs, tmp_path / "best.json")
    grid_files = sorted({p for p in opened if p.startswith(str(grid))})
    assert grid_files == sorted(runs)
    assert not [p for p in opened if p.endswith("predictions.tsv")]
    for tsv in grid.rglob("predictions.tsv"):
        tsv.unlink()
    again = grid_select(grid, runs, tmp_path / "again.json")
    assert again == best and best["name"] == POINTS[0]


def test_a_predictions_path_is_refused_before_anything_is_opened(tmp_path, opened):
    """Checked against a break: without the file-name check the path was refused only as a
    run outside the grid, not as a file grid-select must not read."""
    grid = tmp_path / "grid"
    runs = write_grid(grid, lambda n, s: 0.5)
    test_file = str(pathlib.Path(runs[3]).with_name("predictions.tsv"))
    opened.clear()
    with pytest.raises(GridError, match="validation metrics only.*predictions.tsv"):
        select([*runs[:3], test_file, *runs[4:]], tmp_path / "best.json",
               axes=AXES, seeds=SEEDS, grid_dir=grid, dataset="demo", variant="thne")  # fmt: skip
    assert not [p for p in opened if p.startswith(str(grid))]
    assert not (tmp_path / "best.json").exists()


def test_a_missing_or_extra_run_is_an_error_naming_it(tmp_path):
    """A point x seed not given, a run of a seed or a point outside the grid, and a file that
    is not JSON. Checked against two breaks: without the missing-run check the missing run
    was a KeyError; without the extra-run check the seed3 run passed silently."""
    grid = tmp_path / "grid"
    runs = write_grid(grid, lambda n, s: 0.5)
    kwargs = dict(axes=AXES, seeds=SEEDS, grid_dir=grid, dataset="demo", variant="thne")
    out = tmp_path / "best.json"
    gone = runs[5]
    with pytest.raises(GridError, match=rf"no run given for 1 point x seed.*{re.escape(gone)}"):
        select([r for r in runs if r != gone], out, **kwargs)
    seed3 = pathlib.Path(runs[0]).parent.parent / "seed3" / "valid_metrics.json"
    with pytest.raises(GridError, match=rf"not in the grid.*{re.escape(str(seed3))}"):
        select([*runs, seed3], out, **kwargs)
    stray = grid / "batch_size~32/lr~0.01/alpha~0.1/seed1/valid_metrics.json"
    stray.parent.mkdir(parents=True)
    stray.write_text(json.dumps({"mae": 0.1}))
    with pytest.raises(GridError, match=rf"not in the grid.*{re.escape(str(stray))}"):
        select([*runs, stray], out, **kwargs)
    pathlib.Path(runs[2]).write_text("{not json")
    with pytest.raises(GridError, match=rf"{re.escape(runs[2])}: cannot be read as JSON"):
        select(runs, out, **kwargs)
    assert not out.exists()


# grid-report -----------------------------------------------------------------------------

N_CLIPS = 40
REPORT_AXES = {"batch_size": [32, 64], "lr": [5.0e-4, 1.0e-3], "acoustic_hidden": [32, 64]}
UNTUNED = {"batch_size": 16, "lr": 1.0e-3, "acoustic_hidden": 32}


def write_run(folder, labels, noise, variant, seed):
    """A run's test predictions.tsv (labels plus ``noise``) and its metrics.json."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"clip_id": [f"clip{i:02d}" for i in range(len(labels))], "label": labels,
                  "prediction": labels + noise}).to_csv(folder / "predictions.tsv", sep="\t",
                                                        index=False)  # fmt: skip
    evaluate_predictions(folder / "predictions.tsv", folder / "metrics.json", variant=variant,
                         seed=seed)  # fmt: skip
    return folder / "metrics.json", folder / "predictions.tsv"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """grid-report over two variants' synthetic grids (thne and mmim, 2 search seeds), their
    untuned runs and their tuned runs (3 seeds each); tuned runs are closer to the labels."""
    root = tmp_path_factory.mktemp("grid_report") / "results" / "demo"
    rng = np.random.default_rng(7)
    labels = np.round(rng.uniform(-3, 3, N_CLIPS), 1)
    variants = ("thne", "mmim")
    best = []
    for k, variant in enumerate(variants):
        grid = root / "grid" / variant
        names = list(grid_points(REPORT_AXES))

        def mae(n, s, k=k, names=names):
            return 0.9 - 0.03 * ((names.index(n) + 3 * k) % 8) + 0.002 * s

        runs = write_grid(grid, mae, axes=REPORT_AXES, variant=variant)
        select(runs, grid / "best.json", axes=REPORT_AXES, seeds=SEEDS, grid_dir=grid,
               dataset="demo", variant=variant)  # fmt: skip
        best.append(grid / "best.json")
    untuned_runs, untuned_preds, tuned_runs, tuned_preds = [], [], [], []
    for variant in variants:
        for seed in (1, 2, 3):
            m, p = write_run(root / "runs" / variant / f"seed{seed}", labels,
                             rng.normal(0, 1.0, N_CLIPS), variant, seed)  # fmt: skip
            untuned_runs.append(m), untuned_preds.append(p)
            m, p = write_run(root / "tuned" / variant / f"seed{seed}", labels,
                             rng.normal(0, 0.4, N_CLIPS), variant, seed)  # fmt: skip
            tuned_runs.append(m), tuned_preds.append(p)
    # 8 test videos of 5 clips: too few for a reliable interval, so the caution is printed.
    videos = {f"clip{i:02d}": f"video{i // 5}" for i in range(N_CLIPS)}
    write_manifest(root / "manifest.tsv", [
        Clip(c, v, 0.0, 1.0, "test", 0.0, "text", "") for c, v in videos.items()
    ])  # fmt: skip
    aggregate_variants(tuned_runs, root / "tuned" / "variants.json", dataset="demo",
                       variants=variants, predictions=tuned_preds, videos=videos,
                       resamples=300)  # fmt: skip
    values = {v: UNTUNED for v in variants}
    args = [
        "grid-report", "--dataset", "demo", "--paper", "mosi", "--variants", "thne,mmim",
        "--best", *map(str, best), "--tuned-variants", str(root / "tuned" / "variants.json"),
        "--tuned-predictions", *map(str, tuned_preds), "--untuned-runs", *map(str, untuned_runs),
        "--untuned-predictions", *map(str, untuned_preds), "--untuned-values", json.dumps(values),
        "--resamples", "500", "--manifest", str(root / "manifest.tsv"),
        "--out", str(root / "grid.md"),
        "--figure", str(root / "figures" / "grid.png"), "--page", str(root / "report/grid.html"),
        "--forest", str(root / "figures" / "grid_forest.png"),
    ]  # fmt: skip
    thne(args)
    return {
        "root": root,
        "args": args,
        "text": (root / "grid.md").read_text(),
        "best": {v: json.loads(p.read_text()) for v, p in zip(variants, best, strict=True)},
        "untuned": untuned_runs,
        "tuned": json.loads((root / "tuned" / "variants.json").read_text()),
    }


def section(text, variant):
    return text.split(f"(`{variant}`)\n")[1].split("\n## ")[0]


def test_the_report_ranks_every_point_and_marks_the_choice(report):
    """Checked against a break: writing the points in grid order instead of best.json's ranking
    left the ranks and the MAE column out of order."""
    assert report["text"].startswith("# Hyper-parameter grid search on demo\n")
    assert RULE in report["text"] and "test split is read only after the choice" in report["text"]
    for variant, best in report["best"].items():
        rows = [
            line for line in section(report["text"], variant).splitlines()
            if re.match(r"\| (\*\*)?\d+", line)
        ]  # fmt: skip
        assert len(rows) == len(best["points"]) == 8
        ranks = [int(re.match(r"\| (?:\*\*)?(\d+)", r).group(1)) for r in rows]
        assert ranks == list(range(1, 9))
        maes = [float(r.split(" | ")[4].split(" ± ")[0]) for r in rows]
        assert maes == sorted(maes)
        chosen = best["point"]
        assert rows[0].startswith("| **1 (chosen)** | " + f"{chosen['batch_size']} | ")
        assert sum("(chosen)" in r for r in rows) == 1


def test_the_report_sets_the_choice_beside_table_2_and_the_paper_row(report):
    """Checked against two breaks: reading Table 2 for the dataset name (demo) instead of
    --paper left the paper column empty, and dropping the paper's row lost Table 3's MAE."""
    thne_part, mmim_part = section(report["text"], "thne"), section(report["text"], "mmim")
    chosen = report["best"]["thne"]["point"]
    assert f"| `lr` (learning rate η) | {chosen['lr']!r} | 0.001 | 0.001 |" in thne_part
    assert f"| `batch_size` (batch size) | {chosen['batch_size']} | 16 | 32 |" in thne_part
    assert "| `acoustic_hidden` (A-sLSTM hidden dim) |" in thne_part
    assert f"| t-HNE | paper, Table 3 (mean of 5 runs) | {TABLE3['mosi']['mae']:.3f} |" in thne_part
    quoted = "| MMIM | paper, Table 3, quoted (from Xie et al., 2024) |"
    assert f"{quoted} {TABLE3_MMIM['mosi']['mae']:.3f}" in mmim_part
    assert "| tuned − tuned t-HNE |" in mmim_part and "tuned − tuned t-HNE" not in thne_part


def test_the_tuned_minus_untuned_difference_is_a_paired_bootstrap(report):
    """The MAE difference is the tuned mean minus the untuned mean of the metrics files, inside
    its own interval, and clearly negative (tuned runs have 0.4 of the noise). Checked against
    a break: the two prediction sets swapped (and the metrics cross-check off) printed
    untuned − tuned, +0.479 where the metrics give -0.479."""
    untuned = [json.loads(p.read_text())["mae"] for p in report["untuned"]]
    for k, variant in enumerate(("thne", "mmim")):
        row = next(
            line for line in section(report["text"], variant).splitlines()
            if line.startswith("| tuned − untuned")
        )  # fmt: skip
        mae_cell = row.split(" | ")[1]
        point, lo, hi = map(
            float, re.match(r"([-+.\d]+) \[([-+.\d]+), ([-+.\d]+)\]", mae_cell).groups()
        )
        expected = report["tuned"]["variants"][variant]["mean"]["mae"] - np.mean(
            untuned[3 * k : 3 * k + 3]
        )
        assert point == pytest.approx(expected, abs=6e-4)
        assert lo <= point <= hi < 0
    assert "500 resamples (seed 0) drawing whole videos (8 test videos, 40 clips)" in report["text"]
    # Break caught: the caution dropped from grid.md (8 videos are fewer than 20).
    assert "Unreliable: the test split has 8 videos, fewer than 20." in report["text"]


def test_the_figure_has_a_panel_per_axis_and_the_page_is_html(report, tmp_path):
    """Checked against a break: drawing the panels in a fixed 2 x 3 layout without removing the
    unused ones gave six axes for three hyper-parameters."""
    import matplotlib.image

    png = report["root"] / "figures" / "grid.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = matplotlib.image.imread(png).shape[:2]
    assert width > height  # one row of three panels
    panels = plot_grid(report["best"], tmp_path / "again.png")
    assert panels == list(REPORT_AXES)
    # The forest plot of tuned − untuned: drawn, and not blank.
    from PIL import Image

    with Image.open(report["root"] / "figures" / "grid_forest.png") as forest:
        assert len(forest.convert("RGB").getcolors(maxcolors=1 << 20)) > 100
    page = (report["root"] / "report" / "grid.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    assert "<h1>Hyper-parameter grid search on demo</h1>" in page


def test_mosei_table_2_notes_its_a_slstm_dim_outside_the_grid(report):
    """MOSEI's A-sLSTM 16 is noted when the grid lacks 16, not when it has it; a dataset
    without paper rows says so. Checked against a break: removing the note's condition on the
    axis values printed it for a grid containing 16 too."""
    best = report["best"]["thne"]
    text = choice_table(best, UNTUNED, "mosei")
    assert "| 16 † |" in text and "outside its own search grid" in text
    with16 = {**best, "axes": {**best["axes"], "acoustic_hidden": [16, 32]}}
    text = choice_table(with16, UNTUNED, "mosei")
    assert "| 16 |" in text and "outside" not in text and "†" not in text
    assert "no values for demo" in choice_table(best, UNTUNED, "demo")


def test_the_report_checks_that_its_inputs_cover_the_variants(report, tmp_path, monkeypatch):
    """A best.json of another variant, and untuned runs lacking a variant. Checked against two
    breaks: matching best.json files to --variants by position accepted mmim's as thne's;
    without the missing-variant check the bootstrap failed with an IndexError."""
    monkeypatch.setenv("THNE_DEBUG", "1")  # the error itself, not the command's exit
    args = list(report["args"])
    out = tmp_path / "grid.md"
    args[args.index("--out") + 1] = str(out)
    mixed = list(args)
    at = mixed.index("--best") + 1
    mixed[at] = mixed[at + 1]  # mmim's best.json twice
    with pytest.raises(GridError, match=r"a second best.json of 'mmim'"):
        thne(mixed)
    lacking = list(args)
    at = lacking.index("--untuned-runs") + 1
    del lacking[at + 3 : at + 6]  # mmim's three untuned metrics.json
    at = lacking.index("--untuned-predictions") + 1
    del lacking[at + 3 : at + 6]
    with pytest.raises(GridError, match="no untuned runs given for variant.*mmim"):
        thne(lacking)
    assert not out.exists()
    assert math.isfinite(report["best"]["thne"]["valid"]["mae"]["mean"])
