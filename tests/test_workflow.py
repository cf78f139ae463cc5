"""The real Snakemake workflow, run in a temporary directory on a demo subset."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml

from conftest import (
    BIN,
    REPO,
    SNAKEMAKE,
    chromium,
    jobs_planned,
    render_page,
    run_snakemake,
    watch_page,
)
from thne.evaluate.metrics import METRIC_KEYS
from thne.variants import SHIPPED_VARIANTS


def demo_subset(dest: Path, per_split: dict[str, int]) -> Path:
    """A copy of the demo dataset with the first clips of each split, from several videos."""
    src = REPO / "resources" / "demo"
    labels = pd.read_csv(src / "label.csv", dtype=str)
    picked = []
    for split, n in per_split.items():
        rows = labels[labels["mode"] == split]
        # Round-robin over videos so that each split spans more than one video.
        rows = rows.assign(k=rows.groupby("video_id").cumcount()).sort_values(["k", "video_id"])
        picked.append(rows.head(n).drop(columns="k"))
    subset = pd.concat(picked)
    for vid, seg in zip(subset.video_id, subset.clip_id, strict=True):
        (dest / "Raw" / vid).mkdir(parents=True, exist_ok=True)
        shutil.copy(src / "Raw" / vid / f"{seg}.mp4", dest / "Raw" / vid / f"{seg}.mp4")
    subset.to_csv(dest / "label.csv", index=False)
    return dest


def write_config(path: Path, raw_dir: Path, **train) -> Path:
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo = base["datasets"]["demo"]
    demo["source"]["raw_dir"] = str(raw_dir)
    demo["train"].update({"seeds": [1], "max_epochs": 1, "batch_size": 4, **train})
    path.write_text(yaml.safe_dump({"datasets": {"demo": demo}}))
    return path


@pytest.mark.slow
def test_lint():
    proc = subprocess.run(
        [*SNAKEMAKE, "--lint"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_bad_config_stops_before_any_job(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["datasets"]["demo"]["train"]["batch_size"] = "large"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "--configfile", str(tmp_path / "bad.yaml"), "-n", check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "batch_size" in out and "large" in out
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_a_variant_may_set_its_own_loss_weights(tmp_path):
    """The shipped residual variant trains with alpha 0.05 (paper section 5.2), the others with
    the dataset's alpha; a variant's beta likewise replaces the dataset's."""
    assert SHIPPED_VARIANTS["residual"] == {"residual": True, "alpha": 0.05}
    cfg = write_config(tmp_path / "c.yaml", REPO / "resources" / "demo", alpha=0.3, beta=0.1)
    variants = {"light": {"beta": 0.02}}
    cfg.write_text(yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "variants": variants}))
    runs = {
        v: f"results/demo/runs/{v}/seed1/model.safetensors" for v in ("thne", "residual", "light")
    }
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "-p", *runs.values())
    commands = {
        v: next(line for line in proc.stdout.splitlines() if f"--variant {v} " in line)
        for v in runs
    }
    weights = {v: re.search(r"--alpha (\S+) --beta (\S+)", c).groups() for v, c in commands.items()}
    assert weights == {
        "thne": ("0.3", "0.1"),
        "residual": ("0.05", "0.1"),
        "light": ("0.3", "0.02"),
    }
    assert "--residual " in commands["residual"] and "--no-residual" in commands["light"]


@pytest.mark.slow
def test_demo_subset_end_to_end(demo_build, tmp_path):
    """The demo subset from its videos to the metrics, the paper's tables, figure and HTML
    report; then what a second call and a changed training value plan. The first run is the
    session's (conftest.demo_build: the same subset, `--cores 2 results/demo/metrics.json`),
    copied here with Snakemake's records: the call below finds it done, as a second call on
    the same folder would. Catches a workflow that stops or writes a wrong count of clips,
    runs or predictions, reruns finished jobs, or reruns the features for a training value."""
    raw = demo_build.raw
    demo_build.copy_to(tmp_path)
    cfg = demo_build.write_config(tmp_path / "cfg.yaml")
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2", "results/demo/metrics.json")

    manifest = pd.read_csv(tmp_path / "data/demo/manifest.tsv", sep="\t", dtype=str)
    assert len(manifest) == 12 and manifest.split.value_counts().to_dict() == {
        "train": 6,
        "valid": 3,
        "test": 3,
    }
    # Clip by clip: each clip in the split label.csv gives it.
    labels = pd.read_csv(raw / "label.csv", dtype=str)
    mode = dict(zip(labels.video_id + "_" + labels.clip_id, labels["mode"], strict=True))
    assert dict(zip(manifest.clip_id, manifest.split, strict=True)) == mode
    report = json.loads((tmp_path / "data/demo/splits.json").read_text())
    assert report["counts"] == {"train": 6, "valid": 3, "test": 3} and report["layout"] == "mmsa"
    assert "paper_table1" not in report  # the demo has no row in paper Table 1
    metrics = json.loads((tmp_path / "results/demo/metrics.json").read_text())
    assert metrics["dataset"] == "demo" and metrics["variant"] == "thne" and metrics["seeds"] == [1]
    assert tuple(metrics["mean"]) == METRIC_KEYS
    run = tmp_path / "results/demo/runs/thne/seed1"
    assert {p.name for p in run.iterdir()} >= {
        "model.safetensors",
        "run.json",
        "history.tsv",
        "predictions.tsv",
        "valid_metrics.json",
        "metrics.json",
    }
    assert len(pd.read_csv(run / "predictions.tsv", sep="\t")) == 3
    for log in ("ingest", "audio", "visual", "text", "aggregate"):
        assert (tmp_path / f"logs/demo/{log}.log").exists()

    # Nothing left to do on a second call.
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "results/demo/metrics.json")
    assert "Nothing to be done" in proc.stdout + proc.stderr

    # A training hyper-parameter change reruns training and what follows, not the features.
    cfg2 = demo_build.write_config(tmp_path / "cfg2.yaml", lr=2.0e-3)
    proc = run_snakemake(
        tmp_path, "results/demo/metrics.json", "--configfile", str(cfg2), "-n", "--quiet", "rules"
    )
    assert set(jobs_planned(proc)) == {"train", "evaluate", "aggregate"}, proc.stdout

    # The paper's tables, Figure 3 and the case study, for three variants (MMIM one of them):
    # t-HNE's run is reused.
    cfg3 = demo_build.write_config(tmp_path / "cfg3.yaml", variants=["thne", "no_re", "mmim"])
    targets = [f"results/demo/{t}" for t in ("table.md", "ablation.md", "cases.md")]
    targets.append("results/demo/figures/loss_curves.png")
    proc = run_snakemake(tmp_path, *targets, "--configfile", str(cfg3), "-n", "--quiet", "rules")
    out = proc.stdout + proc.stderr
    assert re.search(r"^\s*train\s+2\s*$", out, re.M), out  # no_re and mmim only
    run_snakemake(tmp_path, *targets, "--configfile", str(cfg3), "--cores", "2")
    variants = json.loads((tmp_path / "results/demo/variants.json").read_text())
    assert list(variants["variants"]) == ["thne", "no_re", "mmim"]
    assert variants["variants"]["thne"]["mean"] == metrics["mean"]
    assert variants["significance"]["resamples"] == 10_000
    assert variants["significance"]["n_clips"] == 3
    mmim = variants["variants"]["mmim"]["vs_thne"]["mae"]
    assert mmim["difference"] == pytest.approx(
        variants["variants"]["mmim"]["mean"]["mae"] - metrics["mean"]["mae"], abs=1e-6
    )
    assert mmim["interval"][0] <= mmim["interval"][1]
    mmim_history = pd.read_csv(tmp_path / "results/demo/runs/mmim/seed1/history.tsv", sep="\t")
    assert {"l_ft", "lld_tv", "mi_nll"} <= set(mmim_history) and "l_tv" not in mmim_history
    table = (tmp_path / "results/demo/table.md").read_text()
    assert f"| {metrics['mean']['mae']:.3f} |" in table and "all-MiniLM-L6-v2" in table
    assert "dlib-landmarks" in table and "librosa" in table
    ablation = (tmp_path / "results/demo/ablation.md").read_text()
    assert "thne `no_re`, 1 seed (1)" in ablation and "| MMIM | thne `mmim`, 1 seed (1)" in ablation
    assert "| MMIM (`mmim`) | " in ablation and "10,000 resamples" in ablation
    assert "| MMIM | thne `mmim`, 1 seed (1)" in table and "## Differences from t-HNE" in table
    cases = (tmp_path / "results/demo/cases.md").read_text()
    assert cases.count("| demo") == 2  # 3 test clips: one in each list, none in both
    assert (tmp_path / "results/demo/figures/loss_curves.png").stat().st_size > 20_000
    history = pd.read_csv(tmp_path / "results/demo/runs/no_re/seed1/history.tsv", sep="\t")
    assert "l_fv" not in history and "l_tv" in history

    # The HTML report: tables, figure, splits, excluded clips and config, with captions.
    pages = "results/demo/report/index.html"
    run_snakemake(tmp_path, pages, "--configfile", str(cfg3), "--cores", "2")
    report = tmp_path / "results/demo/report.html"
    run_snakemake(tmp_path, "--report", str(report), pages, "--configfile", str(cfg3))
    check_report(report, tmp_path / "screenshots")
    browse_report(report)


def h5_arrays(path: Path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file, by its name, as bytes (strings as their text)."""
    arrays = {}

    def keep(name: str, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            value = obj[()]
            arrays[name] = (
                repr(value.tolist()).encode() if value.dtype == object else value.tobytes()
            )

    with h5py.File(path, "r") as h5:
        h5.visititems(keep)
    return arrays


@pytest.mark.slow
def test_one_core_gives_the_features_and_metrics_of_two(demo_build, tmp_path):
    """The session's build ran under `--cores 2`: each extraction job with the demo's 2
    threads, which Snakemake also gives BLAS (OPENBLAS_NUM_THREADS and the like). The whole
    build again under `--cores 1` gives the same feature arrays, byte for byte, and the same
    predictions and metrics. Checked against the acoustic features computed with as many BLAS
    threads as the job has (before thne/features/audio.py kept BLAS to one thread): the MFCC
    columns differed by up to 1.5e-5, on every clip."""
    root = demo_build.copy_to(tmp_path / "root")
    target = "results/demo/metrics.json"
    args = (target, "--configfile", str(demo_build.config), "--cores", "1", "--forceall")
    run_snakemake(root, *args)
    for name in ("audio", "visual", "text"):
        path = f"features/demo/{name}.h5"
        assert (root / path).stat().st_mtime > (demo_build.root / path).stat().st_mtime, path
        assert h5_arrays(root / path) == h5_arrays(demo_build.root / path), path
    run = "results/demo/runs/thne/seed1/predictions.tsv"
    assert (root / run).read_bytes() == (demo_build.root / run).read_bytes()
    one, two = (json.loads((r / target).read_text()) for r in (root, demo_build.root))
    assert one["mean"] == two["mean"]


def json_results(text: str) -> dict:
    """The report's ``results`` object: result path -> name, caption, data URI..."""
    start = text.index("var results = ", text.index('<script id="results">'))
    return json.JSONDecoder().raw_decode(text, start + len("var results = "))[0]


def embedded_results(report: Path) -> dict[str, bytes]:
    """Result path -> the file the report embeds for it (its data URI, decoded)."""
    import base64
    from urllib.parse import unquote_to_bytes

    found = {}
    for path, entry in json_results(report.read_text()).items():
        head, data = entry["data_uri"].split(",", 1)
        found[path] = base64.b64decode(data) if head.endswith(";base64") else unquote_to_bytes(data)
    return found


def check_report(report: Path, shots: Path) -> None:
    """Open the report in headless Chromium at each page and check what it shows."""
    results = embedded_results(report)
    for name in ("table", "ablation", "cases", "splits", "excluded", "config", "clips"):
        assert f"results/demo/report/{name}.html" in results, sorted(results)
    clips = results["results/demo/report/clips.html"].decode()
    # One row per test clip of the subset (tests/test_clip_page.py drives the page itself).
    assert "<table id='clips'>" in clips and clips.count("<tr data-video=") == 3
    assert "results/demo/figures/loss_curves.png" in results
    # thne report-figures: built with the pages, embedded as PNGs with their captions.
    for name in ("forest", "predicted", "confusion", "seeds", "epochs"):
        figure = results[f"results/demo/figures/{name}.png"]
        assert figure[:8] == b"\x89PNG\r\n\x1a\n" and len(figure) > 10_000, name
    table = results["results/demo/report/table.html"].decode()
    assert "<table>" in table and "MAE" in table and "all-MiniLM-L6-v2" in table
    assert "w/o Re" in results["results/demo/report/ablation.html"].decode()
    assert results["results/demo/figures/loss_curves.png"][:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert "Test results of t-HNE on" in text  # a caption from workflow/report/
    # Every result sits in a category and a subcategory of the report's menu, none in "Other".
    start = text.index("var categories = ") + len("var categories = ")
    categories = json.JSONDecoder().raw_decode(text, start)[0]
    assert all("Other" not in subs for subs in categories.values()), categories
    assert "chosen on the validation split only" in text  # epochs.rst
    shots.mkdir(parents=True, exist_ok=True)
    for path in ("results/demo/report/table.html", "results/demo/figures/loss_curves.png"):
        # The report is one page app: open it on this result, as a click in it would.
        view = "html" if path.endswith(".html") else "img"
        opened = shots / (Path(path).stem + "_view.html")
        # The page's scripts hold "</body>" in strings: add ours before the last, real one.
        head, tag, tail = text.rpartition("</body>")
        opened.write_text(
            head
            + "<script>window.addEventListener('load', () => setTimeout(() => app.setView("
            + f"{{content: '{view}', contentPath: results['{path}'].data_uri, "
            + f"resultPath: '{path}'}}), 500));</script>"
            + tag
            + tail
        )
        shot = shots / (Path(path).stem + ".png")
        dom = render_page(opened.as_uri(), shot, (1400, 1000), 20)
        # The app rendered its menu, and shows the result's own embedded file.
        uri = json_results(text)[path]["data_uri"]
        assert "Results" in dom and uri[:200] in dom, f"{path} is not shown"


def browse_report(report: Path) -> None:
    """The report in the system Chromium, driven through Playwright, with every request that
    would leave the machine refused: each figure the report embeds loads (no broken image),
    the per-clip page sorts and filters by clicks and typing inside the report's frame, and
    the console shows no error. Checked against a report whose forest plot had its PNG
    signature overwritten: that image did not load."""
    from playwright.sync_api import sync_playwright

    results = json_results(report.read_text())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        page = browser.new_page()
        errors, remote = watch_page(page)
        page.goto(report.as_uri())
        page.wait_for_function("typeof app !== 'undefined'")

        def show(path: str, content: str) -> None:
            # What a click on the result in the report's menu does.
            page.evaluate(
                "([path, content]) => app.setView({content: content, resultPath: path, "
                "contentPath: results[path].data_uri})",
                [path, content],
            )

        figures = [r for r in results if r.endswith(".png")]
        assert len(figures) == 6, figures  # Figure 3 and the five of report_figures
        for path in figures:
            show(path, "img")
            img = page.locator(f"img[src='{results[path]['data_uri']}']")
            img.wait_for()
            loaded = img.evaluate("i => i.complete && i.naturalWidth > 100")
            assert loaded, f"{path} does not load in the report"

        show("results/demo/report/clips.html", "html")
        page.wait_for_function("document.querySelector('iframe') !== null")
        frame = page.frame_locator("iframe")
        rows = frame.locator("#clips tbody tr")
        assert rows.count() == 3
        frame.locator("#clips thead th", has_text="label").click()
        labels = [float(rows.nth(i).locator("td").nth(3).inner_text()) for i in range(3)]
        assert labels == sorted(labels)
        video = rows.nth(0).locator("td").nth(0).inner_text()
        frame.locator("#video").fill(video)
        shown = [r.locator("td").first.inner_text() for r in rows.all() if r.is_visible()]
        assert shown and set(shown) == {video}
        browser.close()
    assert not errors, errors
    assert not remote, remote


@pytest.mark.slow
def test_missing_clip_fails_or_is_excluded(tmp_path):
    raw = demo_subset(tmp_path / "raw", {"train": 3, "valid": 1, "test": 1})
    labels = pd.read_csv(raw / "label.csv", dtype=str)
    gone = raw / "Raw" / labels.video_id[0] / f"{labels.clip_id[0]}.mp4"
    gone.unlink()
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    proc = run_snakemake(
        tmp_path, "--configfile", str(cfg), "--cores", "1", "data/demo/manifest.tsv", check=False
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/demo/ingest.log").read_text()
    assert f"{labels.video_id[0]}_{labels.clip_id[0]}" in log and str(gone) in log
    # One message naming the clip and its file once, with no traceback.
    line = next(li for li in log.splitlines() if f"{labels.video_id[0]}_{labels.clip_id[0]}" in li)
    assert line.count(str(gone)) == 1 and "Traceback" not in log
    assert not (tmp_path / "data/demo/manifest.tsv").exists()

    spec = yaml.safe_load(cfg.read_text())
    spec["datasets"]["demo"]["on_bad_clip"] = "exclude"
    cfg.write_text(yaml.safe_dump(spec))
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "1", "data/demo/manifest.tsv")
    excluded = pd.read_csv(tmp_path / "data/demo/excluded.tsv", sep="\t")
    assert list(excluded.clip_id) == [f"{labels.video_id[0]}_{labels.clip_id[0]}"]
    assert "does not exist" in excluded.reason[0]
    assert (
        "clips per split: train 2, valid 1, test 1"
        in (tmp_path / "logs/demo/ingest.log").read_text()
    )


@pytest.mark.slow
def test_a_shipped_variant_keeps_its_switches(tmp_path):
    """An entry named like a shipped variant may change its loss weights, not its switches:
    Snakemake stops before any job, naming the key. Checked against the workflow without
    this check: the plan went ahead, and the training job stopped with a traceback after the
    features were built."""
    cfg = tmp_path / "v.yaml"
    cfg.write_text(yaml.safe_dump({"variants": {"no_re": {"recovery": False, "residual": True}}}))
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "variants.no_re:" in out and "not residual" in out, out
    cfg.write_text(yaml.safe_dump({"variants": {"no_re": {"alpha": 0.2}}}))
    run_snakemake(tmp_path, "--configfile", str(cfg), "-n")
