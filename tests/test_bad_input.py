"""What a user sees for bad input: one clear message, the fix, and nothing left half done."""

import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
import zipfile
from pathlib import Path

import av
import pandas as pd
import pytest
import yaml
from test_workflow import demo_subset, write_config

from conftest import BIN, REPO, need, run_snakemake
from thne.data.manifest import Clip, write_manifest
from thne.data.unpack import CorruptArchive, UnpackError, unpack
from thne.features.store import read_h5
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


def faststart_copy(src: Path, dest: Path) -> Path:
    """``src`` remuxed with its index at the front, as most web video is."""
    with (
        av.open(str(src)) as inp,
        av.open(str(dest), "w", options={"movflags": "faststart"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux(list(inp.streams)):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dest


def cut_past_half(path: Path) -> Path:
    """Cut ``path`` in place at the first packet boundary past half its bytes."""
    data = path.read_bytes()
    with av.open(str(path)) as container:
        cut = min(p.pos for p in container.demux() if p.pos is not None and p.pos > len(data) // 2)
    path.write_bytes(data[:cut])
    return path


@pytest.fixture
def truncated(tmp_path):
    """A demo subset whose first clip is a faststart mp4 cut at a packet boundary past half:
    its index still declares the whole length, and its first frames decode."""
    raw = demo_subset(tmp_path / "raw", {"train": 3, "valid": 1, "test": 1})
    labels = pd.read_csv(raw / "label.csv", dtype=str)
    clip = raw / "Raw" / labels.video_id[0] / f"{labels.clip_id[0]}.mp4"
    whole = faststart_copy(clip, tmp_path / "whole.mp4")
    clip.write_bytes(whole.read_bytes())
    cut_past_half(clip)
    return raw, f"{labels.video_id[0]}_{labels.clip_id[0]}", clip, whole


# Truncated media


@pytest.mark.slow
def test_truncated_faststart_video_is_stopped_at_ingest(tmp_path, truncated):
    """Before: it went through ingest and both extractors with exit 0, its features covering
    0.96 s of a 3.12 s clip."""
    raw, clip_id, clip, whole = truncated
    with av.open(str(whole)) as container:
        length = container.duration / av.time_base
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    proc = run_snakemake(
        tmp_path, "--configfile", str(cfg), "--cores", "1", "data/demo/manifest.tsv", check=False
    )
    assert proc.returncode != 0
    log = (tmp_path / "logs/demo/ingest.log").read_text()
    assert clip_id in log and "the file is truncated" in log
    assert f"of the clip's {length:.2f} s" in log

    spec = yaml.safe_load(cfg.read_text())
    spec["datasets"]["demo"]["on_bad_clip"] = "exclude"
    cfg.write_text(yaml.safe_dump(spec))
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "1", "data/demo/manifest.tsv")
    excluded = pd.read_csv(tmp_path / "data/demo/excluded.tsv", sep="\t")
    assert list(excluded.clip_id) == [clip_id]
    assert "holds 0." in excluded.reason[0] and "truncated" in excluded.reason[0]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["audio", "visual"])
def test_each_extractor_checks_its_frames_reach_the_clips_end(tmp_path, truncated, stage):
    """Before: a clip that got past ingest was extracted from whatever decoded; the acoustic
    stage passed a cut file, and audio.h5 held a shortened clip."""
    _, clip_id, clip, whole = truncated
    with av.open(str(whole)) as container:
        length = round(container.duration / av.time_base, 4)
    intact = Clip("whole_1", "whole", 0.0, length, "train", 1.0, "fine", str(whole))
    cut = Clip(clip_id, "cut", 0.0, length, "train", 1.0, "cut short", str(clip))
    write_manifest(tmp_path / "m.tsv", [intact, cut])
    out = tmp_path / f"{stage}.h5"
    args = [stage, "--manifest", str(tmp_path / "m.tsv"), "--out", str(out)]
    proc = thne(*args)
    assert proc.returncode == 1 and not out.exists()
    assert f"clip {clip_id}" in proc.stderr and f"of {length:.2f} s" in proc.stderr
    assert "Traceback" not in proc.stderr

    assert thne(*args, "--on-bad-clip", "exclude").returncode == 0
    features = read_h5(out)
    assert sorted(features.features) == ["whole_1"]
    [excluded] = features.excluded
    assert excluded["clip_id"] == clip_id and "decoded 0." in excluded["reason"]


# Changed media


@pytest.mark.slow
def test_a_replaced_or_restored_media_file_reruns_its_shards_and_nothing_else(tmp_path):
    """Before: neither ingest nor extraction took the media as input, so a replaced video kept
    its old features and a clip excluded for a missing file stayed excluded after the file was
    put back ("Nothing to be done")."""
    demo = REPO / "resources" / "demo"
    labels = pd.read_csv(demo / "label.csv", dtype=str)
    keep = {("demo01", "1"), ("demo01", "2"), ("demo10", "1"), ("demo13", "1")}
    labels = labels[[(v, c) in keep for v, c in zip(labels.video_id, labels.clip_id, strict=True)]]
    raw = tmp_path / "raw"
    for vid, clip in keep:
        (raw / "Raw" / vid).mkdir(parents=True, exist_ok=True)
        shutil.copy(demo / "Raw" / vid / f"{clip}.mp4", raw / "Raw" / vid / f"{clip}.mp4")
    labels.to_csv(raw / "label.csv", index=False)
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    spec = yaml.safe_load(cfg.read_text())
    # A shard per video: demo01 is shard 0, and keeps a clip whatever happens to its first.
    spec["datasets"]["demo"].update(shard_size=1, on_bad_clip="exclude")
    cfg.write_text(yaml.safe_dump(spec))
    victim = raw / "Raw" / "demo01" / "1.mp4"
    # The acoustic shards stand for both: visual_shard carries the same media fingerprint.
    args = ("--configfile", str(cfg), "--cores", "2", "features/demo/audio.stats.json")
    run_snakemake(tmp_path, *args)
    shards = sorted((tmp_path / "features/demo/shards").rglob("*.h5"))
    assert len(shards) == 3

    def rerun() -> set[str]:
        before = {p: p.stat().st_mtime_ns for p in shards}
        run_snakemake(tmp_path, *args)
        return {
            str(p.relative_to(tmp_path / "features/demo/shards"))
            for p in shards
            if p.stat().st_mtime_ns != before[p]
        }

    backup = tmp_path / "backup.mp4"
    shutil.copy2(victim, backup)
    shutil.copy(raw / "Raw" / "demo10" / "1.mp4", victim)  # replaced by another recording
    assert rerun() == {"audio/0.h5"}
    assert "Nothing to be done" in run_snakemake(tmp_path, *args, "-n").stdout

    victim.unlink()
    assert rerun() == {"audio/0.h5"}
    excluded = pd.read_csv(tmp_path / "data/demo/excluded.tsv", sep="\t")
    assert list(excluded.clip_id) == ["demo01_1"]
    shutil.copy2(backup, victim)  # restored, with its old date
    assert rerun() == {"audio/0.h5"}
    assert pd.read_csv(tmp_path / "data/demo/excluded.tsv", sep="\t").empty
    assert len(read_h5(tmp_path / "features/demo/audio.h5").features) == 4


def test_every_extraction_shard_carries_its_media_fingerprint():
    """The test above runs the acoustic shards; the visual and OpenFace ones must carry the
    same fingerprint and read the manifest as ancient(), or a changed video reruns nothing."""
    text = (REPO / "workflow" / "rules" / "features.smk").read_text()
    rules = re.split(r"^rule ", text, flags=re.M)
    openface = (REPO / "workflow" / "rules" / "openface.smk").read_text()
    rules += re.split(r"^rule ", openface, flags=re.M)
    for name in ("audio_shard", "visual_shard", "openface_shard"):
        [body] = [r for r in rules if r.startswith(f"{name}:")]
        assert "media=lambda wc: shards.shard_media(config, manifest(wc)" in body, name
    shards = (REPO / "thne" / "workflow" / "shards.py").read_text()
    assert 'ancient(f"data/{ds}/manifest.tsv")' in shards
    assert 'ancient("data/{ds}/manifest.tsv")' in "\n".join(rules)


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


@pytest.mark.slow
def test_a_users_source_replaces_the_shipped_one(tmp_path):
    """From the repository root, as the README runs it: a demo url plans the download and
    unpacking, a raw_dir plans neither. Checked by hand: with the Snakefile's former
    ``configfile: "config/config.yaml"`` line back, Snakemake deep-merged the shipped raw_dir
    (resources/demo) under the user's url, planned no download and ingested the shipped clips
    (an earlier version of this test ran with --directory, where the line read nothing)."""
    cfg = demo_source(tmp_path / "c.yaml", layout="mmsa", url="http://127.0.0.1:9/demo.zip")
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "data/demo/manifest.tsv")
    plan = proc.stdout + proc.stderr
    assert "download_archive" in plan and "unpack_archive" in plan
    assert "resources/demo" not in plan and "--raw-dir data/demo/raw" in plan

    raw = demo_subset(tmp_path / "mine", {"train": 1, "valid": 1, "test": 1})
    cfg = demo_source(tmp_path / "d.yaml", layout="mmsa", raw_dir=str(raw))
    proc = run_snakemake(tmp_path, "--configfile", str(cfg), "-n", "data/demo/manifest.tsv")
    plan = proc.stdout + proc.stderr
    assert "download_archive" not in plan and "unpack_archive" not in plan
    assert f"--raw-dir {raw}" in plan


# Downloads and archives


@pytest.mark.slow
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


@pytest.mark.slow
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


# Leftovers of killed jobs


@pytest.mark.slow
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


def test_visual_log_counts_clips_without_a_face(tmp_path, media):
    """Before: clips whose frames all lack a face were counted nowhere."""
    video = str(need(media / "astronaut_noface_frames_26-50.mp4"))
    clips = [
        Clip("v_1", "v", 0.0, 3.0, "train", 1.0, "faces then none", video),
        # Frames 26 to 50 (1.0 s to 2.0 s at 25 fps) hold no face.
        Clip("v_2", "v", 1.1, 1.9, "train", 1.0, "no face at all", video),
    ]
    write_manifest(tmp_path / "m.tsv", clips)
    proc = thne("visual", "--manifest", str(tmp_path / "m.tsv"), "--out", str(tmp_path / "v.h5"))
    assert proc.returncode == 0, proc.stderr
    assert "clips with frames but no face in any: 1" in proc.stderr
