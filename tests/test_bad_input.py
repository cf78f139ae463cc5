"""What a user sees for bad input: one clear message, the fix, and nothing left half done."""

import functools
import http.server
import os
import subprocess
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import demo_subset, write_config

from conftest import BIN, run_snakemake
from thne.data.unpack import CorruptArchive, UnpackError, unpack
from thne.io import atomic_path, remove_stale


def thne(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "thne"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )


def zip_folder(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for path in sorted(folder.rglob("*")):
            z.write(path, path.relative_to(folder))
    return dest


@pytest.fixture
def server(tmp_path):
    """A local HTTP server for the files in ``tmp_path / "served"``; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def demo_source(path: Path, **source) -> Path:
    path.write_text(yaml.safe_dump({"datasets": {"demo": {"source": source}}}))
    return path


# Config


def test_config_error_names_the_key_path_first(tmp_path):
    """Before: Snakemake's schema dump came first and the key's location last."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"datasets": {"demo": {"train": {"batch_size": "large"}}}}))
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config.datasets.demo.train.batch_size: 'large' is not of type 'integer'" in out
    assert "Failed validating" not in out and "On instance" not in out


def test_a_users_source_replaces_the_shipped_one(tmp_path):
    """Before: the shipped raw_dir (resources/demo) was merged under the user's url and won,
    so the demo's own clips were trained on and nothing was downloaded."""
    cfg = demo_source(tmp_path / "c.yaml", layout="mmsa", url="http://127.0.0.1:9/demo.zip")
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "data/demo/manifest.tsv")
    plan = proc.stdout + proc.stderr
    assert "download_archive" in plan and "unpack_archive" in plan
    assert "resources/demo" not in plan


# Downloads and archives


def test_failed_download_names_every_url_and_what_to_set_instead(tmp_path):
    """Before: two tracebacks, ending in 'could not download ... from any of 1 URL(s)'."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "datasets": {
                    "mosi": {
                        "source": {
                            "layout": "cmu",
                            "url": "http://127.0.0.1:9/CMU_MOSI.zip",
                            "mirrors": ["http://127.0.0.1:9/mirror.zip"],
                        }
                    }
                }
            }
        )
    )
    proc = run_snakemake(
        tmp_path, "--configfile", str(cfg), "--cores", "1", "data/mosi/manifest.tsv", check=False
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/mosi/download_archive.log").read_text()
    assert "Traceback" not in log
    assert "http://127.0.0.1:9/CMU_MOSI.zip" in log and "http://127.0.0.1:9/mirror.zip" in log
    for key in ("raw_dir", "archive", "mirrors"):
        assert f"datasets.mosi.source.{key}" in log
    assert "Training on standard feature sets" in log
    # Snakemake shows the failed job's log, so the user reads the fix without opening it.
    assert "datasets.mosi.source.raw_dir" in proc.stdout + proc.stderr


def test_corrupt_download_is_moved_aside_and_fetched_again(tmp_path, server):
    """Before: a damaged archive downloaded without a sha256 stayed 'finished', and every
    later run failed at unpacking with no word on deleting it."""
    served, base = server
    raw = demo_subset(tmp_path / "raw", {"train": 2, "valid": 1, "test": 1})
    good = zip_folder(raw, tmp_path / "good.zip")
    (served / "demo.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cfg = demo_source(tmp_path / "c.yaml", layout="mmsa", url=f"{base}/demo.zip")
    work = tmp_path / "work"
    work.mkdir()
    args = ("--configfile", str(cfg), "--cores", "1", "data/demo/manifest.tsv")

    proc = run_snakemake(work, *args, check=False)
    assert proc.returncode != 0
    log = (work / "logs/demo/unpack.log").read_text()
    assert "corrupt or truncated" in log and "moved it aside" in log
    assert "Traceback" not in log
    download = work / "data/demo/download"
    assert not (download / "archive").exists()
    assert (download / "archive.corrupt").stat().st_size == good.stat().st_size // 2

    (served / "demo.zip").write_bytes(good.read_bytes())
    run_snakemake(work, *args)
    manifest = pd.read_csv(work / "data/demo/manifest.tsv", sep="\t")
    assert len(manifest) == 4


def test_a_users_own_corrupt_archive_stays_where_it_is(tmp_path):
    archive = tmp_path / "mine.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(CorruptArchive) as err:
        unpack(archive, tmp_path / "out", progress=False)
    assert "moved" not in str(err.value)
    assert archive.exists()


def test_unsafe_archive_is_refused_but_not_moved(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("../evil.txt", "x")
    with pytest.raises(UnpackError) as err:
        unpack(archive, tmp_path / "out", progress=False, move_corrupt_aside=True)
    assert not isinstance(err.value, CorruptArchive)
    assert archive.exists() and not (tmp_path / "evil.zip.corrupt").exists()


# Errors without tracebacks


def test_expected_errors_print_one_message_and_no_traceback(tmp_path):
    """Before: an IngestError, DownloadError or UnpackError printed a full traceback."""
    missing = tmp_path / "nothing.zip"
    proc = thne("unpack", "--archive", str(missing), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first == f"thne unpack: error: cannot unpack {missing}: no such file"

    debug = thne(
        "unpack", "--archive", str(missing), "--out", str(tmp_path / "out"), THNE_DEBUG="1"
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_clips_file_is_named_once(tmp_path):
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
    line = next(li for li in log.splitlines() if f"{labels.video_id[0]}_{labels.clip_id[0]}" in li)
    assert line.count(str(gone)) == 1
    assert "Traceback" not in log


# Leftovers of killed jobs


def test_stale_temporaries_are_removed_when_a_job_starts(tmp_path):
    """Before: a killed job's .tmp files stayed forever (at MOSEI scale, large HDF5 files)."""
    raw = demo_subset(tmp_path / "raw", {"train": 2, "valid": 1, "test": 1})
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    data = tmp_path / "data" / "demo"
    data.mkdir(parents=True)
    stale = [data / ".manifest.tsv.4242.tmp", data / ".excluded.tsv.17.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    unrelated = data / ".notes.txt.4242.tmp"
    unrelated.write_text("not an output of ingest")
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "1", "data/demo/manifest.tsv")
    assert not any(p.exists() for p in stale)
    assert unrelated.exists()
    assert "left by an interrupted run" in (tmp_path / "logs/demo/ingest.log").read_text()


def test_atomic_write_clears_leftovers_of_its_own_file_only(tmp_path):
    out = tmp_path / "audio.h5"
    mine = tmp_path / ".audio.h5.99999.tmp"
    other = tmp_path / ".audio.h5.stats.json.1.tmp"
    mine.write_bytes(b"x")
    other.write_bytes(b"y")
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"done")
    assert out.read_bytes() == b"done"
    assert not mine.exists() and other.exists()
    assert remove_stale(out) == []

