"""OpenFace through the real workflow, with a stand-in FeatureExtraction on PATH that writes,
for every input, the rows of a real OpenFace CSV fixture over the video's frames (the parser and
slicing are the real ones)."""

import os
import re
import sys

import h5py
import pandas as pd
import pytest
import yaml
from test_workflow import demo_subset

from conftest import FIXTURES, need, run_snakemake
from thne.features.openface import feature_names

# Like OpenFace: one row per video frame (frames counted from 1, timestamp = (frame - 1) / fps),
# so the rows cover the whole video; the fixture's rows are reused in turn.
STAND_IN = """#!{python}
import csv, sys
import av
args = sys.argv[1:]
inputs = [args[i + 1] for i, a in enumerate(args) if a == "-f"]
out = args[args.index("-out_dir") + 1]
with open({calls!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
with open({csv!r}, newline="") as f:
    header, *rows = list(csv.reader(f))
for video in inputs:
    with av.open(video) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        n_frames = sum(1 for _ in container.demux(stream) if _.pts is not None)
    stem = video.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    with open(f"{{out}}/{{stem}}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(n_frames):
            row = list(rows[i % len(rows)])
            row[0], row[2] = str(i + 1), f"{{i / rate:.3f}}"
            writer.writerow(row)
"""


@pytest.mark.slow
def test_demo_subset_with_openface(tmp_path):
    csv = need(FIXTURES / "openface" / "astronaut_75frames.csv")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "FeatureExtraction"
    calls = tmp_path / "calls.txt"
    exe.write_text(STAND_IN.format(python=sys.executable, calls=str(calls), csv=str(csv)))
    exe.chmod(0o755)
    raw = demo_subset(tmp_path / "raw", {"train": 3, "valid": 2, "test": 2})
    cfg = tmp_path / "c.yaml"
    demo = {
        "source": {"layout": "mmsa", "raw_dir": str(raw)},
        "shard_size": 100,
        "visual": {"extractor": "openface", "openface_groups": ["aus_r", "pose"]},
    }
    cfg.write_text(yaml.safe_dump({"datasets": {"demo": demo}}))
    os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ['PATH']}"
    try:
        run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "1", "features/demo/visual.h5")
    finally:
        os.environ["PATH"] = os.environ["PATH"].split(os.pathsep, 1)[1]
    manifest = pd.read_csv(tmp_path / "data/demo/manifest.tsv", sep="\t", dtype={"clip_id": str})
    # One OpenFace call for the shard's seven clip files, however many clips.
    assert len(calls.read_text().splitlines()) == 1
    assert calls.read_text().count(" -f ") + calls.read_text().startswith("-f ") == 7
    with h5py.File(tmp_path / "features/demo/visual.h5") as h5:
        names = [n.decode() if isinstance(n, bytes) else n for n in h5.attrs["feature_names"]]
        assert names == feature_names(["aus_r", "pose"])
        assert sorted(h5.keys()) == sorted(manifest.clip_id)
        for clip_id, end in zip(manifest.clip_id, manifest.end, strict=True):
            ts = h5[clip_id]["timestamps"][()]
            assert ts[0] == 0 and ts[-1] < end and h5[clip_id]["features"][:, 0].all()
    log = (tmp_path / "logs/demo/openface/shard0.log").read_text()
    assert "OpenFace done: 0 input(s) failed" in log
    # The CSVs are temp(): gone once the shard's features are written.
    assert not (tmp_path / "features/demo/openface/run/0").exists()


FAKE_APPTAINER = """#!/bin/bash
# Stands in for apptainer: records each exec and runs its command on this machine, with the
# "image's" FeatureExtraction first on PATH.
case $1 in
    --version) echo "apptainer version 1.3.4"; exit 0 ;;
    pull) shift; [[ $1 == --name ]] && echo "$3" > "$2"; exit 0 ;;
    exec) ;;
    *) echo "fake apptainer: unexpected $*" >&2; exit 1 ;;
esac
shift
args=("$@")
n=${{#args[@]}}
# ... IMAGE SHELL -c CMD
image=${{args[$((n - 4))]}}
echo "exec $(cat "$image") :: ${{args[$((n - 1))]}}" >> {calls}
PATH={image_bin}:$PATH exec "${{args[$((n - 3))]}}" -c "${{args[$((n - 1))]}}"
"""


@pytest.mark.slow
def test_openface_runs_in_the_container_with_sdm_apptainer(tmp_path):
    csv = need(FIXTURES / "openface" / "astronaut_75frames.csv")
    host_bin, image_bin = tmp_path / "bin", tmp_path / "image_bin"
    host_bin.mkdir()
    image_bin.mkdir()
    fe_calls, apptainer_calls = tmp_path / "fe_calls.txt", tmp_path / "apptainer_calls.txt"
    exe = image_bin / "FeatureExtraction"
    exe.write_text(STAND_IN.format(python=sys.executable, calls=str(fe_calls), csv=str(csv)))
    exe.chmod(0o755)
    apptainer = host_bin / "apptainer"
    apptainer.write_text(
        FAKE_APPTAINER.format(calls=str(apptainer_calls), image_bin=str(image_bin))
    )
    apptainer.chmod(0o755)
    raw = demo_subset(tmp_path / "raw", {"train": 2, "valid": 1, "test": 1})
    cfg = tmp_path / "c.yaml"
    demo = {
        "source": {"layout": "mmsa", "raw_dir": str(raw)},
        "shard_size": 2,
        "visual": {"extractor": "openface"},
    }
    cfg.write_text(yaml.safe_dump({"datasets": {"demo": demo}}))
    os.environ["PATH"] = f"{host_bin}{os.pathsep}{os.environ['PATH']}"
    try:
        run_snakemake(
            tmp_path,
            "--configfile",
            str(cfg),
            "--cores",
            "1",
            "features/demo/visual.h5",
            "--sdm",
            "apptainer",
        )
    finally:
        os.environ["PATH"] = os.environ["PATH"].split(os.pathsep, 1)[1]
    execs = apptainer_calls.read_text().splitlines()
    # Two shards, each one OpenFace call inside the image; every other rule ran on the host.
    assert len(execs) == 2
    assert all(line.startswith("exec docker://algebr/openface:latest :: ") for line in execs)
    assert all("openface_run.sh" in line for line in execs)
    assert len(fe_calls.read_text().splitlines()) == 2
    manifest = pd.read_csv(tmp_path / "data/demo/manifest.tsv", sep="\t", dtype={"clip_id": str})
    with h5py.File(tmp_path / "features/demo/visual.h5") as h5:
        assert sorted(h5.keys()) == sorted(manifest.clip_id)
        names = [n.decode() if isinstance(n, bytes) else n for n in h5.attrs["feature_names"]]
        assert names == feature_names()


def test_openface_crash_is_a_recorded_exclusion(tmp_path, monkeypatch, capsys):
    from thne.cli import main as thne
    from thne.data.manifest import Clip, write_manifest
    from thne.features.store import read_h5

    media = need(FIXTURES / "media" / "astronaut_75frames.mp4")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "FeatureExtraction"
    exe.write_text(f"#!{sys.executable}\nimport sys\nsys.exit(3)\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    write_manifest(tmp_path / "m.tsv", [Clip("v_1", "v", 0.0, 3.0, "train", 1.0, "t", str(media))])
    args = [
        "visual",
        "--manifest",
        str(tmp_path / "m.tsv"),
        "--out",
        str(tmp_path / "v.h5"),
        "--extractor",
        "openface",
    ]
    thne([*args, "--on-bad-clip", "exclude"])
    ff = read_h5(tmp_path / "v.h5")
    assert ff.features == {}
    [excluded] = ff.excluded
    assert excluded["clip_id"] == "v_1" and "exited with code 3" in excluded["reason"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        thne(args)
    # One message naming the clip once and its file, and no traceback.
    assert stop.value.code == 1
    err = capsys.readouterr().err
    expected = r"thne visual: error: clip v_1: \S*astronaut_75frames.mp4: .*exited with code 3"
    assert re.search(expected, err)
    assert err.count("v_1") == 1 and "Traceback" not in err
