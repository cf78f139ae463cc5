"""``thne predict``: new media scored by a run trained here, through the real workflow.

The session's demo build (conftest.demo_build), with a second seed trained on it here, is the
module's workflow run; the predictions of its test clips' media, scored again from the media,
must equal the run's own.
"""

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import BIN, FIXTURES, jobs_run, need, render_page, run_snakemake, tiny_mp4

# One worker under pytest-xdist runs this file's tests, so that its module fixtures are
# built once, not once on each worker.
pytestmark = pytest.mark.xdist_group("test_predict")

SEEDS = (1, 2)
TALKING = "if you ask me this is quite a good video and i enjoyed it"


def thne(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The ``thne`` console script, as a user runs it."""
    proc = subprocess.run([str(BIN / "thne"), *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:])
    return proc


def thne_here(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``thne`` in this process (no second start of torch): its exit status and stderr."""
    from thne.cli import main

    err = io.StringIO()
    code = 0
    with contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    if check and code != 0:
        raise AssertionError(err.getvalue()[-3000:])
    return subprocess.CompletedProcess(args, code, "", err.getvalue())


def faceless_with_sound(path: Path, seconds: float = 2.0) -> Path:
    """A real mp4 with a flat grey picture (no face) and a 220 Hz tone."""
    rate = 16000
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        for i in range(int(seconds * 10)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), "rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        t = np.arange(int(seconds * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None, :]
        for k in range(0, tone.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(tone[:, k : k + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = k
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, demo_build):
    """A finished demo-subset workflow run with two seeds of t-HNE: the session's build (one
    seed), copied here, and its second seed trained on the same features; its test clips."""
    root = demo_build.copy_to(tmp_path_factory.mktemp("predict"))
    cfg = demo_build.write_config(root / "cfg.yaml", seeds=list(SEEDS))
    targets = [f"results/demo/runs/thne/seed{s}/model.safetensors" for s in SEEDS]
    proc = run_snakemake(root, "--configfile", str(cfg), "--cores", "2", *targets)
    # Only the new seed trained: the build's features, text and first seed were up to date.
    assert jobs_run(proc) == ["train"], proc.stderr
    manifest = pd.read_csv(root / "data/demo/manifest.tsv", sep="\t", dtype={"clip_id": str})
    test = manifest[manifest.split == "test"]
    return root, test


@pytest.fixture(scope="module")
def scored(trained):
    """One CLI call on a TSV: the test clips, talking_face (its first 6 s), a faceless clip
    with sound and a face without sound; with --explain and the work files kept."""
    root, test = trained
    talking = need(FIXTURES / "media" / "talking_face.mp4")
    silent = need(FIXTURES / "media" / "astronaut_75frames.mp4")
    faceless = faceless_with_sound(root / "faceless.mp4")
    rows = [
        {"clip": c, "media": m, "text": t, "start": "", "end": ""}
        for c, m, t in zip(test.clip_id, test.media, test.text, strict=True)
    ]
    rows += [
        {
            "clip": "talking",
            "media": str(talking),
            "text": TALKING,
            "start": "0",
            "end": "6",
        },
        {
            "clip": "faceless",
            "media": str(faceless),
            "text": "nothing to see here",
            "start": "",
            "end": "",
        },
        {
            "clip": "silent",
            "media": str(silent),
            "text": "a face and no sound",
            "start": "",
            "end": "",
        },
    ]
    table = root / "inputs.tsv"
    pd.DataFrame(rows).to_csv(table, sep="\t", index=False)
    out = root / "scored" / "predictions.tsv"
    thne(
        "predict",
        "--run",
        str(root / "results/demo/runs/thne/seed1"),
        str(table),
        "--out",
        str(out),
        "--explain",
        str(root / "scored/explain"),
        "--work",
        str(root / "scored/work"),
    )
    return root, test, out


def run_predictions(root: Path, seed: int) -> pd.DataFrame:
    path = root / f"results/demo/runs/thne/seed{seed}/predictions.tsv"
    return pd.read_csv(path, sep="\t", dtype={"clip_id": str}).set_index("clip_id")


@pytest.mark.slow
def test_run_records_how_features_and_tokens_were_made(trained):
    root, _ = trained
    run = root / "results/demo/runs/thne/seed1"
    saved = json.loads((run / "run.json").read_text())
    prov = saved["provenance"]
    assert prov["acoustic"]["extractor"].startswith("librosa ")
    assert prov["acoustic"]["config"]["n_mfcc"] == 20
    assert prov["acoustic"]["config"]["groups"] == [
        "mfcc",
        "rms",
        "zcr",
        "centroid",
        "f0",
        "voicing",
    ]
    assert prov["visual"]["config"] == {"extractor": "landmarks", "detect_every": 5}
    assert prov["visual"]["feature_names"] == saved["visual_names"]
    assert prov["text"] == {"encoder": "all-MiniLM-L6-v2", "max_length": 50}
    assert prov["max_frames"] == 500
    assert {"tokenizer_config.json", "config.json"} <= set(saved["encoder_files"])
    assert {p.name for p in (run / "encoder").iterdir()} == set(saved["encoder_files"])
    # Nothing in a run directory is a pickle.
    assert not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))


@pytest.mark.slow
def test_predictions_equal_the_runs_own_on_its_test_clips(scored):
    root, test, out = scored
    pred = pd.read_csv(out, sep="\t", dtype={"clip": str}).set_index("clip")
    assert list(pred.columns) == [
        "media",
        "start",
        "end",
        "prediction",
        "polarity",
        "acc7_class",
        "s_fv",
        "s_fa",
        "face_detected",
        "audio_present",
    ]
    own = run_predictions(root, 1)
    assert sorted(own.index) == sorted(test.clip_id)
    for clip in test.clip_id:
        assert pred.loc[clip, "prediction"] == pytest.approx(own.loc[clip, "prediction"], abs=1e-5)
        assert pred.loc[clip, "s_fv"] == pytest.approx(own.loc[clip, "s_fv"], abs=1e-5)
        assert pred.loc[clip, "s_fa"] == pytest.approx(own.loc[clip, "s_fa"], abs=1e-5)
    talking = pred.loc["talking"]
    assert np.isfinite(talking.prediction) and (talking.start, talking.end) == (0, 6)
    assert talking.face_detected > 0.5 and talking.audio_present == 1
    assert talking.polarity == ("positive" if talking.prediction > 0 else "negative")
    assert talking.acc7_class == int(np.round(np.clip(talking.prediction, -3, 3)))
    excluded = pd.read_csv(out.with_name("predictions.excluded.tsv"), sep="\t")
    assert excluded.empty


@pytest.mark.slow
def test_a_clip_without_face_or_sound_is_scored_with_its_presence_at_zero(scored):
    _, _, out = scored
    pred = pd.read_csv(out, sep="\t").set_index("clip")
    assert pred.loc["faceless", "face_detected"] == 0 and pred.loc["faceless", "audio_present"] == 1
    assert pred.loc["silent", "audio_present"] == 0 and pred.loc["silent", "face_detected"] > 0.5
    assert np.isfinite(pred.loc[["faceless", "silent"], "prediction"]).all()


@pytest.mark.slow
def test_one_video_with_its_transcript_on_the_command_line(trained, tmp_path):
    root, test = trained
    clip = test.iloc[0]
    out = tmp_path / "one.tsv"
    thne_here(
        "predict",
        "--run",
        str(root / "results/demo/runs/thne/seed1"),
        clip.media,
        "--text",
        clip.text,
        "--out",
        str(out),
    )
    pred = pd.read_csv(out, sep="\t")
    assert len(pred) == 1 and pred.media[0] == clip.media
    own = run_predictions(root, 1)
    assert pred.prediction[0] == pytest.approx(own.loc[clip.clip_id, "prediction"], abs=1e-5)


@pytest.mark.slow
def test_ensemble_averages_the_seeds_and_gives_their_spread(scored, tmp_path):
    """From the features the first call kept (the workflow's way: --manifest --audio --visual)."""
    root, test, _ = scored
    work = root / "scored/work"
    out = tmp_path / "ensemble.tsv"
    thne_here(
        "predict",
        "--ensemble",
        str(root / "results/demo/runs/thne"),
        "--manifest",
        str(work / "manifest.tsv"),
        "--audio",
        str(work / "audio.h5"),
        "--visual",
        str(work / "visual.h5"),
        "--out",
        str(out),
    )
    pred = pd.read_csv(out, sep="\t", dtype={"clip": str}).set_index("clip")
    assert set(pred.n_seeds) == {len(SEEDS)}
    for clip in test.clip_id:
        seeds = [run_predictions(root, s).loc[clip, "prediction"] for s in SEEDS]
        assert pred.loc[clip, "prediction"] == pytest.approx(np.mean(seeds), abs=1e-5)
        assert pred.loc[clip, "prediction_std"] == pytest.approx(np.std(seeds, ddof=1), abs=1e-5)


@pytest.mark.slow
def test_attention_sums_to_one_over_each_clips_frames(scored):
    from thne.data.manifest import read_manifest
    from thne.predict.score import read_features, score_run
    from thne.runs import load_run

    root, test, _ = scored
    work = root / "scored/work"
    data = read_features(
        read_manifest(work / "manifest.tsv"), work / "audio.h5", work / "visual.h5"
    )
    scores = score_run(load_run(root / "results/demo/runs/thne/seed1"), data)
    assert len(scores) == len(test) + 3  # talking, faceless and silent
    for s, v, a in zip(scores, data.visual, data.acoustic, strict=True):
        assert len(s.attn_v) == min(len(v), 500) == len(s.times_v)
        assert len(s.attn_a) == min(len(a), 500) == len(s.times_a)
        assert s.attn_v.sum() == pytest.approx(1.0, abs=1e-5)
        assert s.attn_a.sum() == pytest.approx(1.0, abs=1e-5)
        assert np.all(np.diff(s.times_v) > 0) and s.times_a[0] == 0


@pytest.mark.slow
def test_explain_figures_and_page(scored):
    from PIL import Image

    root, test, _ = scored
    explain = root / "scored/explain"
    clips = [*test.clip_id, "talking", "faceless", "silent"]
    for clip in clips:
        with Image.open(explain / f"{clip}.png") as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert image.size[0] >= 500 and pixels.std() > 10, f"{clip}.png looks blank"
    page = (explain / "index.html").read_text()
    assert all(f"src='{c}.png'" in page for c in clips) and TALKING in page
    shot = root / "scored/index_shot.png"
    dom = render_page((explain / "index.html").as_uri(), shot, (1200, 1600), 50)
    # Every figure loaded: the page's images have their natural size once decoded.
    assert dom.count("<figure") == len(clips) and "Where the text looked" in dom


@pytest.mark.slow
def test_an_unreadable_video_is_an_error_or_an_exclusion(trained, tmp_path):
    root, _ = trained
    astronaut = need(FIXTURES / "media" / "astronaut_75frames.mp4")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (tmp_path / "broken.txt").write_text("this file is not a video")
    good = tmp_path / "astronaut.mp4"
    shutil.copy(astronaut, good)
    good.with_suffix(".txt").write_text("a face and no sound")
    run = str(root / "results/demo/runs/thne/seed1")
    out = tmp_path / "out.tsv"
    proc = thne_here("predict", "--run", run, str(tmp_path), "--out", str(out), check=False)
    assert proc.returncode == 1 and "broken.mp4" in proc.stderr and not out.exists()
    thne_here("predict", "--run", run, str(tmp_path), "--out", str(out), "--on-bad-clip", "exclude")
    pred = pd.read_csv(out, sep="\t")
    assert list(pred["clip"]) == ["astronaut"]
    excluded = pd.read_csv(tmp_path / "out.excluded.tsv", sep="\t")
    assert list(excluded["clip"]) == ["broken"] and excluded["media"][0] == str(broken)
    assert "broken.mp4" in excluded["reason"][0]


@pytest.mark.slow
def test_a_folder_video_without_a_transcript_is_named(trained, tmp_path):
    root, _ = trained
    tiny_mp4(tmp_path / "alone.mp4")
    proc = thne_here(
        "predict",
        "--run",
        str(root / "results/demo/runs/thne/seed1"),
        str(tmp_path),
        "--out",
        str(tmp_path / "o.tsv"),
        check=False,
    )
    assert proc.returncode == 1 and "alone.txt" in proc.stderr


@pytest.mark.slow
def test_a_run_loads_without_its_encoder_on_the_machine(scored, tmp_path):
    """The run directory alone suffices: the run's encoder name pointing nowhere changes
    nothing."""
    from thne.data.manifest import read_manifest
    from thne.predict.score import read_features, score_run
    from thne.runs import load_run

    root, test, _ = scored
    moved = tmp_path / "elsewhere" / "seed1"
    shutil.copytree(root / "results/demo/runs/thne/seed1", moved)
    saved = json.loads((moved / "run.json").read_text())
    saved["config"]["encoder"] = str(tmp_path / "no-such-encoder")
    (moved / "run.json").write_text(json.dumps(saved))
    work = root / "scored/work"
    data = read_features(
        read_manifest(work / "manifest.tsv"), work / "audio.h5", work / "visual.h5"
    )
    scores = {s.clip_id: s.prediction for s in score_run(load_run(moved), data)}
    own = run_predictions(root, 1)
    for clip in test.clip_id:
        assert scores[clip] == pytest.approx(own.loc[clip, "prediction"], abs=1e-5)


@pytest.mark.slow
def test_a_truncated_run_file_is_named(trained, tmp_path):
    """A model file cut short (a copy interrupted on its way from a cluster): thne predict
    names the file and says what is wrong, without a traceback. Before: a raw
    PytorchStreamReader traceback that named no file."""
    root, _ = trained
    run = tmp_path / "seed1"
    shutil.copytree(root / "results/demo/runs/thne/seed1", run)
    weights = run / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    args = [str(need(FIXTURES / "media" / "talking_face.mp4")), "--text", "hello"]
    proc = thne_here(
        "predict", "--run", str(run), *args, "--out", str(tmp_path / "o.tsv"), check=False
    )
    assert proc.returncode == 1
    assert f"{weights}: not readable safetensors" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_older_run_says_what_to_retrain_and_is_never_unpickled(tmp_path):
    """A run directory of an older thne holds only a pickled model.pt; one handed over may
    carry code that runs when it is unpickled. thne predict says to retrain it, and the code
    does not run.

    Break checked by hand: torch.load(model.pt, weights_only=False) in read_run before the
    retrain error makes the marker file appear (and this test fail)."""
    from payload import RunsCode

    run = tmp_path / "results/demo/runs/thne/seed1"
    run.mkdir(parents=True)
    marker = tmp_path / "marker"
    torch.save({"state_dict": {}, "config": RunsCode(marker)}, run / "model.pt")
    proc = thne_here(
        "predict",
        "--run",
        str(run),
        str(need(FIXTURES / "media" / "talking_face.mp4")),
        "--text",
        "hello",
        "--out",
        str(tmp_path / "o.tsv"),
        check=False,
    )
    assert proc.returncode == 1
    assert "older thne" in proc.stderr and "results/demo/runs/thne/seed1/model.pt" in proc.stderr
    assert "retrain" in proc.stderr and "seed1/model.safetensors" in proc.stderr
    assert not marker.exists(), "the old run's pickle was loaded and its code ran"


@pytest.mark.slow
def test_explain_needs_a_variant_with_attention(trained, tmp_path):
    from thne.predict.explain import NoAttention
    from thne.predict.pipeline import predict

    root, test = trained
    from safetensors.torch import load_file, save_file

    run = tmp_path / "seed1"
    shutil.copytree(root / "results/demo/runs/thne/seed1", run)
    saved = json.loads((run / "run.json").read_text())
    saved["config"].update(variant="no_deno1", deno1=False)
    (run / "run.json").write_text(json.dumps(saved))
    weights = load_file(run / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "attend_" not in k}, run / "model.safetensors")
    with pytest.raises(NoAttention, match="no_deno1"):
        predict([test.media.iloc[0]], tmp_path / "o.tsv", run=run, text="x", explain=tmp_path / "e")


@pytest.mark.slow
def test_workflow_target_scores_a_folder_and_a_second_run_does_nothing(trained):
    """results/{ds}/predict/{name}/predictions.tsv from a config's predict: section."""
    import yaml

    root, test = trained
    folder = root / "my_videos"
    folder.mkdir()
    for clip in test.itertuples():
        shutil.copy(clip.media, folder / f"{clip.clip_id}.mp4")
        (folder / f"{clip.clip_id}.txt").write_text(clip.text)
    cfg = yaml.safe_load((root / "cfg.yaml").read_text())
    cfg["predict"] = {"mine": {"dataset": "demo", "input": str(folder), "seeds": [1]}}
    (root / "cfg_predict.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/demo/predict/mine/predictions.tsv"
    explain = root / "results/demo/predict/mine/explain"
    args = ("--configfile", str(root / "cfg_predict.yaml"))
    run_snakemake(root, target, str(explain.relative_to(root)), *args, "--cores", "2")
    assert {p.name for p in explain.glob("*.png")} == {f"{c}.png" for c in test.clip_id}
    assert "Where the text looked" in (explain / "index.html").read_text()
    pred = pd.read_csv(root / target, sep="\t", dtype={"clip": str}).set_index("clip")
    own = run_predictions(root, 1)
    assert sorted(pred.index) == sorted(test.clip_id)
    for clip in test.clip_id:
        assert pred.loc[clip, "prediction"] == pytest.approx(own.loc[clip, "prediction"], abs=1e-5)
    assert (root / "features/demo/predict/mine/shards/audio/0.h5").is_file()
    proc = run_snakemake(root, target, *args, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr
