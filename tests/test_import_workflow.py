"""Training from published feature sets through the real workflow: SDK sequences, MMIM and
MMSA pickles, each to results/<name>/metrics.json on a few dozen clips."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pandas as pd
import pytest
import yaml
from feature_sets import write_mmim, write_mmsa_pkl, write_sdk_set

from conftest import run_snakemake

TINY_TRAIN = {"seeds": [1], "max_epochs": 1, "batch_size": 8, "variants": ["thne"], "threads": 1}
MINILM = {"encoder": "all-MiniLM-L6-v2", "max_length": 32}


def write_config(path: Path, name: str, base: str, source: dict) -> Path:
    section = {"base": base, "source": source, "text": MINILM, "train": TINY_TRAIN}
    path.write_text(yaml.safe_dump({"datasets": {name: section}}))
    return path


def train(tmp_path: Path, name: str, base: str, source: dict, *targets: str) -> None:
    cfg = write_config(tmp_path / "cfg.yaml", name, base, source)
    run_snakemake(
        tmp_path,
        "--configfile",
        str(cfg),
        "--cores",
        "2",
        f"results/{name}/metrics.json",
        *targets,
    )
    metrics = json.loads((tmp_path / f"results/{name}/metrics.json").read_text())
    assert metrics["seeds"] == [1] and metrics["mean"]["mae"] > 0


@pytest.mark.slow
def test_sdk_sequences_to_metrics(realdata, tmp_path):
    paths = write_sdk_set(tmp_path / "sdk", realdata)
    source = {"layout": "sdk", **{role: str(p) for role, p in paths.items()}}
    train(tmp_path, "mosi_sdk", "mosi", source, "results/mosi_sdk/table.md")
    manifest = pd.read_csv(tmp_path / "data/mosi_sdk/manifest.tsv", sep="\t")
    assert manifest.split.value_counts().to_dict() == {"train": 16, "valid": 8, "test": 8}
    # Nothing was extracted: the import stands in for ingest and the feature rules.
    assert not (tmp_path / "features/mosi_sdk/shards").exists()
    assert (tmp_path / "logs/mosi_sdk/import.log").exists()
    table = (tmp_path / "results/mosi_sdk/table.md").read_text()
    assert "Feature set: CMU_MOSI_COVAREP 74 + CMU_MOSI_Visual_Facet_42 35" in table
    # Its own name in the title, the paper's row of its base (MOSI) beside it.
    assert table.startswith("# t-HNE on mosi_sdk: test results")
    assert "| paper, Table 3 (mean of 5 runs) | 0.680 | 0.810 |" in table
    with h5py.File(tmp_path / "features/mosi_sdk/audio.h5") as h5:
        assert h5.attrs["config"] and "sdk" in h5.attrs["config"]


@pytest.mark.slow
def test_mmim_pickles_to_metrics(tmp_path):
    folder = write_mmim(tmp_path / "mmim")
    train(tmp_path, "mosi_mmim", "mosi", {"layout": "mmim", "pickles": str(folder)})
    manifest = pd.read_csv(tmp_path / "data/mosi_mmim/manifest.tsv", sep="\t")
    assert manifest.split.value_counts().to_dict() == {"train": 16, "valid": 8, "test": 8}
    assert manifest.clip_id.iloc[0] == "trainVid0[0]"
    assert not manifest.text.str.contains(r"\bsp\b").any()
    with h5py.File(tmp_path / "features/mosi_mmim/visual.h5") as h5:
        assert "word-aligned, MMIM pickles" in h5.attrs["feature_set"]
        # One row per word, pauses included (the features of the pickle are kept as they are).
        assert h5["trainVid0[0]"]["features"].shape[1] == 47


@pytest.mark.slow
def test_mmsa_pickle_to_metrics(tmp_path):
    pkl = write_mmsa_pkl(tmp_path / "mmsa" / "unaligned_50.pkl")
    train(tmp_path, "mosei_mmsa", "mosei", {"layout": "mmsa_pkl", "pickles": str(pkl)})
    manifest = pd.read_csv(tmp_path / "data/mosei_mmsa/manifest.tsv", sep="\t")
    assert manifest.split.value_counts().to_dict() == {"train": 16, "valid": 8, "test": 8}
    data = pd.read_pickle(pkl)
    with h5py.File(tmp_path / "features/mosei_mmsa/audio.h5") as h5:
        # Padding beyond a clip's length is not a frame.
        assert len(h5["trainVid0_0"]["features"]) == data["train"]["audio_lengths"][0]


@pytest.mark.slow
def test_sdk_defaults_are_the_sdk_urls_downloaded(tmp_path):
    cfg = write_config(tmp_path / "cfg.yaml", "mosei_sdk", "mosei", {"layout": "sdk"})
    proc = run_snakemake(
        tmp_path, "--configfile", str(cfg), "-n", "-p", "results/mosei_sdk/metrics.json"
    )
    out = proc.stdout + proc.stderr
    for role in ("labels", "words", "acoustic", "visual"):
        assert f"data/mosei_sdk/download/{role}.csd" in out
    assert "rule download_sequence" in out and "rule download_labels" in out
    assert "--dataset mosei" in out
    # base: mosei gives MOSEI's hyper-parameters (paper Table 2) where the section sets none.
    assert "--alpha 0.1 --beta 0.05 --visual-hidden 64 --acoustic-hidden 16" in out
    # The import stands in for ingest and extraction.
    assert "checkpoint ingest" not in out and "rule merge_features" not in out


@pytest.mark.slow
def test_unknown_base_is_named(tmp_path):
    cfg = write_config(tmp_path / "cfg.yaml", "mosi_x", "mosy", {"layout": "mmim", "pickles": "p"})
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", check=False)
    assert proc.returncode != 0
    assert "datasets.mosi_x.base: 'mosy' must name another section" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_base_of_the_same_layout_gives_its_source(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"datasets": {"mosi_again": {"base": "mosi", "train": {"variants": ["thne"]}}}}
        )
    )
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "data/mosi_again/manifest.tsv")
    out = proc.stdout + proc.stderr
    # mosi's cmu source (its archive URL) and ingest, under the new section's own paths.
    assert "data/mosi_again/download/archive" in out and "checkpoint ingest" in out
