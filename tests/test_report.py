"""variants.json, table.md, ablation.md, the loss-curve figure and cases.md, on fixed run
outputs whose numbers are known."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from thne.cli import main as thne
from thne.data.manifest import Clip, write_manifest
from thne.evaluate.aggregate import aggregate_runs, aggregate_variants
from thne.evaluate.cases import case_table
from thne.evaluate.figures import curves
from thne.evaluate.metrics import METRIC_KEYS
from thne.evaluate.paper import TABLE3, TABLE4

# metric -> value for seed 1; seed 2 adds 0.02 to every metric.
BASE = {
    "mae": 0.7,
    "corr": 0.8,
    "acc7": 0.45,
    "acc5": 0.5,
    "acc2_has0": 0.83,
    "f1_has0": 0.831,
    "acc2_non0": 0.85,
    "f1_non0": 0.852,
}
SHIFT = {"thne": 0.0, "no_re": 0.1}


@pytest.fixture
def runs(tmp_path):
    """results/mosei/runs/{thne,no_re}/seed{1,2}/ with metrics.json, history.tsv, predictions."""
    root = tmp_path / "results" / "mosei" / "runs"
    clips = [
        Clip(f"c{i}", "v", 0, 1, "test", label, f"text {i}", "m.mp4")
        for i, label in enumerate([2.0, -1.0, 0.5, 0.0, -3.0, 1.0])
    ]
    write_manifest(tmp_path / "manifest.tsv", clips)
    for variant, shift in SHIFT.items():
        for seed in (1, 2):
            run = root / variant / f"seed{seed}"
            run.mkdir(parents=True)
            metrics = {k: v + shift + 0.02 * (seed - 1) for k, v in BASE.items()}
            (run / "metrics.json").write_text(
                json.dumps({"variant": variant, "seed": seed, **metrics})
            )
            epochs = 3 if seed == 1 else 2  # early stopping ends seeds at different epochs
            rows = []
            for e in range(1, epochs + 1):
                for split in ("train", "valid"):
                    terms = {"task": 1.0 / e + seed, "total": 2.0 / e + seed}
                    if variant == "thne":
                        terms.update(l_tv=0.5, l_ta=0.6, l_fv=0.7, l_fa=0.8)
                    rows.append({"epoch": e, "split": split, **terms})
            pd.DataFrame(rows).to_csv(run / "history.tsv", sep="\t", index=False)
            # Errors: c0 0.0 (both seeds), c4 the largest.
            errors = [0.0, 0.1 * seed, 0.2, 0.3, 2.0 + seed, 0.05]
            pd.DataFrame(
                {
                    "clip_id": [c.clip_id for c in clips],
                    "label": [c.label for c in clips],
                    "prediction": [c.label + e for c, e in zip(clips, errors, strict=True)],
                    "s_ft": 1.5,
                    "s_fv": [1.0 + seed] * 6,
                    "s_fa": 0.9,
                }
            ).to_csv(run / "predictions.tsv", sep="\t", index=False)
    for modality, width in (("visual", 36), ("audio", 26)):
        with h5py.File(tmp_path / f"{modality}.h5", "w") as h5:
            h5.attrs["feature_names"] = np.array([f"f{i}" for i in range(width)], dtype="S")
            h5.attrs["extractor"] = f"{modality}-extractor 1.0"
            h5.attrs["config"] = json.dumps({"hop": 0.02})
    return tmp_path


def test_variants_json_means_and_stds(runs):
    paths = sorted(str(p) for p in runs.glob("results/mosei/runs/*/seed*/metrics.json"))
    out = runs / "variants.json"
    result = aggregate_variants(paths, out, dataset="mosei", variants=["thne", "no_re"])
    assert list(result["variants"]) == ["thne", "no_re"]
    for variant, shift in SHIFT.items():
        summary = json.loads(out.read_text())["variants"][variant]
        assert summary["seeds"] == [1, 2]
        for key in METRIC_KEYS:
            assert summary["mean"][key] == pytest.approx(BASE[key] + shift + 0.01)
            assert summary["std"][key] == pytest.approx(0.02 / np.sqrt(2), abs=1e-6)
    with pytest.raises(ValueError, match="no runs for variant.*residual"):
        aggregate_variants(paths, out, dataset="mosei", variants=["thne", "no_re", "residual"])
    with pytest.raises(ValueError, match="variant 'no_re' is not one of"):
        aggregate_variants(paths, out, dataset="mosei", variants=["thne"])


def test_table_and_ablation_in_the_papers_units(runs):
    thne_runs = sorted(str(p) for p in runs.glob("results/mosei/runs/thne/seed*/metrics.json"))
    aggregate_runs(thne_runs, runs / "metrics.json", dataset="mosei", variant="thne")
    common = ["--visual", str(runs / "visual.h5"), "--audio", str(runs / "audio.h5")]
    common += ["--encoder", "bert-base-uncased", "--dataset", "mosei"]
    thne(["table", "--metrics", str(runs / "metrics.json"), "--out", str(runs / "t.md"), *common])
    table = (runs / "t.md").read_text()
    # Ours: mean 0.71 ± 0.014; accuracies in percent with 2 decimals.
    assert (
        "| t-HNE | thne, 2 seeds (1, 2) | 0.710 ± 0.014 | 0.810 ± 0.014 | 46.00 ± 1.41 |" in table
    )
    assert "84.00 ± 1.41 / 86.00 ± 1.41 | 84.10 ± 1.41 / 86.20 ± 1.41 |" in table
    # The paper's Table 3 row, as printed there.
    assert "| 0.520 | 0.789 | 54.05 | 85.20 / 87.14 | 85.32 / 87.59 |" in table
    assert "visual-extractor 1.0, 36 columns (hop 0.02)" in table
    assert "audio-extractor 1.0, 26 columns" in table and "bert-base-uncased" in table
    assert TABLE3["mosei"]["acc7"] == pytest.approx(0.5405)

    paths = sorted(str(p) for p in runs.glob("results/mosei/runs/*/seed*/metrics.json"))
    aggregate_variants(paths, runs / "v.json", dataset="mosei", variants=["thne", "no_re"])
    thne(
        ["ablation", "--variants-json", str(runs / "v.json"), "--out", str(runs / "a.md"), *common]
    )
    ablation = (runs / "a.md").read_text()
    lines = [line for line in ablation.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[1] for line in lines[1:]] == [
        "paper, Table 4",
        "thne `thne`, 2 seeds (1, 2)",
        "paper, Table 4",
        "thne `no_re`, 2 seeds (1, 2)",
    ]
    assert lines[3].startswith("| w/o Re | paper, Table 4 | 0.536 | 0.760 | 53.35 |")
    assert lines[4].startswith("| w/o Re | thne `no_re`, 2 seeds (1, 2) | 0.810 ± 0.014 |")
    assert TABLE4["mosei"]["thne"]["acc7"] == pytest.approx(0.5577)

    thne(
        ["table", "--metrics", str(runs / "metrics.json"), "--out", str(runs / "d.md")]
        + common[:-1]
        + ["demo"]
    )
    demo = (runs / "d.md").read_text()
    rows = [line for line in demo.splitlines() if line.startswith("| t-HNE")]
    assert len(rows) == 1 and "| thne, 2 seeds" in rows[0]  # no paper row for the demo
    assert "The paper reports no results on demo." in demo


def test_loss_curves_average_seeds_per_epoch(runs):
    hists = [
        pd.read_csv(p, sep="\t") for p in sorted(runs.glob("results/mosei/runs/thne/*/history.tsv"))
    ]
    c = curves(hists, "task", "train")
    # Epochs 1-2 average both seeds (1/e + 1 and 1/e + 2); epoch 3 has seed 1 only.
    assert list(c.index) == [1, 2, 3] and list(c["n"]) == [2, 2, 1]
    assert c.loc[1, "mean"] == pytest.approx(2.5) and c.loc[1, "std"] == pytest.approx(2**-0.5)
    assert c.loc[3, "mean"] == pytest.approx(1 / 3 + 1) and c.loc[3, "std"] == 0.0
    no_re = [pd.read_csv(p, sep="\t") for p in runs.glob("results/mosei/runs/no_re/*/history.tsv")]
    assert curves(no_re, "l_fv", "valid").empty

    out = runs / "figures" / "loss_curves.png"
    thne(
        [
            "loss-curves",
            "--out",
            str(out),
            "--histories",
            *map(str, sorted(runs.glob("results/mosei/runs/*/seed*/history.tsv"))),
        ]
    )
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size[0] > 1000 and image.size[1] > 600
        # Not a blank canvas: the curves and bands add many colours.
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def test_cases_lists_smallest_and_largest_errors(runs):
    preds = sorted(str(p) for p in runs.glob("results/mosei/runs/thne/seed*/predictions.tsv"))
    frame = case_table(preds, runs / "manifest.tsv")
    assert frame.loc["c4", "error"] == pytest.approx(3.5)  # mean of 3.0 and 4.0
    assert frame.loc["c1", "s_fv"] == pytest.approx(2.5)  # mean over seeds
    out = runs / "cases.md"
    thne(
        [
            "cases",
            "--predictions",
            *preds,
            "--manifest",
            str(runs / "manifest.tsv"),
            "--out",
            str(out),
            "--dataset",
            "mosei",
            "-n",
            "2",
        ]
    )
    text = out.read_text()
    smallest, largest = text.split("## The 2 largest errors")
    assert "| c0 | text 0 | +2.0000 | +2.0000 | 0.0000 | 1.50 / 2.50 / 0.90 |" in smallest
    assert "| c5 | text 5 |" in smallest and "| c4 |" not in smallest
    rows = [line for line in largest.splitlines() if line.startswith("| c")]
    assert rows[0].startswith("| c4 | text 4 | -3.0000 | +0.5000 | 3.5000 |")
    assert rows[1].startswith("| c3 |")


def test_markdown_pages_render_every_line():
    from thne.evaluate.html import markdown_to_html

    page = markdown_to_html(
        "# T\n\nsome text\n-1.5 starts with a dash\n---\n- item `x`\n\n| a |\n|---|\n| <b> |"
    )
    assert "<h1>T</h1>" in page and "-1.5 starts with a dash" in page and "---" in page
    assert "<li>item <code>x</code></li>" in page
    assert "<td>&lt;b&gt;</td>" in page and "<th>a</th>" in page
