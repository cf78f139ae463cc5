"""The three ways to provide a dataset, through the real workflow: raw_dir, archive, url."""

import functools
import http.server
import json
import threading
import zipfile

import pandas as pd
import pytest
import yaml

from conftest import REALDATA, need, run_snakemake, tiny_mp4
from thne.data.splits import standard_folds

# One worker under pytest-xdist runs this file's tests, so that its module fixtures are
# built once, not once on each worker.
pytestmark = pytest.mark.xdist_group("test_sources")

# Two videos of each standard fold.
FOLDS = standard_folds("mosi")
VIDEOS = {
    split: [v for v in sorted(FOLDS) if FOLDS[v] == split][:2]
    for split in ("train", "valid", "test")
}


def small_cmu_mosi(root):
    """A CMU-layout MOSI copy of six real videos: real labels and transcripts, tiny media."""
    keep = {v for vids in VIDEOS.values() for v in vids}
    raw = root / "Raw"
    for sub in ("Labels", "Transcript/Segmented", "Video/Segmented"):
        (raw / sub).mkdir(parents=True)
    rows = [
        line
        for line in need(REALDATA / "mosi" / "OpinionLevelSentiment.csv").read_text().splitlines()
        if line.split(",")[2] in keep
    ]
    (raw / "Labels" / "OpinionLevelSentiment.csv").write_text("\n".join(rows) + "\n")
    texts = pd.read_csv(need(REALDATA / "mosi" / "transcripts.csv"), header=None, dtype=str)
    for vid in keep:
        lines = texts[texts[0].str.rsplit("_", n=1).str[0] == vid]
        body = "".join(
            f"{cid.rsplit('_', 1)[1]}_DELIM_{t}\n"
            for cid, t in zip(lines[0], lines[1], strict=True)
        )
        (raw / "Transcript" / "Segmented" / f"{vid}.annotprocessed").write_text(body)
    tiny = tiny_mp4(root / "tiny.mp4")
    for row in rows:
        vid, seg = row.split(",")[2:4]
        (raw / "Video" / "Segmented" / f"{vid}_{seg}.mp4").write_bytes(tiny.read_bytes())
    tiny.unlink()
    return root, len(rows)


def config(path, **source):
    path.write_text(yaml.safe_dump({"datasets": {"mosi": {"source": {"layout": "cmu", **source}}}}))
    return path


def check_outputs(workdir, n_rows):
    manifest = pd.read_csv(workdir / "data/mosi/manifest.tsv", sep="\t", dtype={"clip_id": str})
    assert len(manifest) == n_rows
    assert set(manifest.video_id) == {v for vids in VIDEOS.values() for v in vids}
    # Each clip is in its video's standard fold.
    assert (manifest.split == manifest.video_id.map(FOLDS)).all()
    report = json.loads((workdir / "data/mosi/splits.json").read_text())
    assert report["paper_table1"] == {"train": 1284, "valid": 229, "test": 686}
    assert report["difference"] == {
        s: report["counts"][s] - report["paper_table1"][s] for s in report["counts"]
    }
    assert sum(report["counts"].values()) == n_rows


@pytest.fixture(scope="module")
def mosi_copy(tmp_path_factory):
    return small_cmu_mosi(tmp_path_factory.mktemp("src") / "CMU_MOSI")


@pytest.mark.slow
def test_raw_dir(tmp_path, mosi_copy):
    root, n_rows = mosi_copy
    cfg = config(tmp_path / "c.yaml", raw_dir=str(root), url=None)
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2", "data/mosi/manifest.tsv")
    check_outputs(tmp_path, n_rows)
    assert not (tmp_path / "data/mosi/download").exists()


def zip_of(root, dest):
    with zipfile.ZipFile(dest, "w") as z:
        for path in sorted(root.rglob("*")):
            z.write(path, path.relative_to(root.parent))
    return dest


@pytest.mark.slow
def test_archive_without_network(tmp_path, mosi_copy):
    root, n_rows = mosi_copy
    archive = zip_of(root, tmp_path / "CMU_MOSI.zip")
    cfg = config(
        tmp_path / "c.yaml", archive=str(archive), url="http://127.0.0.1:9/unreachable.zip"
    )
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2", "data/mosi/manifest.tsv")
    check_outputs(tmp_path, n_rows)
    assert (tmp_path / "data/mosi/raw/CMU_MOSI/Raw/Labels/OpinionLevelSentiment.csv").exists()


@pytest.mark.slow
def test_url_from_local_server_with_mirror(tmp_path, mosi_copy):
    root, n_rows = mosi_copy
    served = tmp_path / "served"
    served.mkdir()
    zip_of(root, served / "CMU_MOSI.zip")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        cfg = config(tmp_path / "c.yaml", url=f"{base}/gone.zip", mirrors=[f"{base}/CMU_MOSI.zip"])
        run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2", "data/mosi/manifest.tsv")
    finally:
        server.shutdown()
    check_outputs(tmp_path, n_rows)
    assert (tmp_path / "data/mosi/download/archive").stat().st_size == (
        served / "CMU_MOSI.zip"
    ).stat().st_size


@pytest.mark.slow
def test_missing_source_is_named(tmp_path):
    cfg = config(tmp_path / "c.yaml", url=None)
    proc = run_snakemake(
        tmp_path, "--configfile", str(cfg), "-n", "data/mosi/manifest.tsv", check=False
    )
    assert proc.returncode != 0
    assert "datasets.mosi.source: give raw_dir, archive or url" in proc.stdout + proc.stderr
