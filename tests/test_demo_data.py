"""Checks of the committed synthetic demo dataset in resources/demo/.

They read the committed files only (no espeak-ng needed). Regenerate the data
with ``python resources/demo/make_demo.py``; a fuller report (every frame, f0)
comes from ``python resources/demo/check_demo.py``.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "resources" / "demo"
COLUMNS = [
    "video_id",
    "clip_id",
    "text",
    "label",
    "label_T",
    "label_A",
    "label_V",
    "annotation",
    "mode",
]
SPLITS = {"train", "valid", "test"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with open(DEMO / "label.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def clip_path(row: dict) -> Path:
    return DEMO / "Raw" / row["video_id"] / f"{row['clip_id']}.mp4"


@pytest.fixture(scope="module")
def audio(rows) -> dict[tuple[str, str], np.ndarray]:
    out = {}
    for row in rows:
        with av.open(str(clip_path(row))) as c:
            chunks = [fr.to_ndarray().mean(axis=0) for fr in c.decode(audio=0)]
        out[(row["video_id"], row["clip_id"])] = np.concatenate(chunks).astype(np.float64)
    return out


def test_total_size_under_10_mb():
    total = sum(
        p.stat().st_size for p in DEMO.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert total < 10 * 1024 * 1024


def test_counts_and_splits_by_video(rows):
    assert len(rows) >= 72
    videos = {r["video_id"] for r in rows}
    assert len(videos) >= 8
    assert {r["mode"] for r in rows} == SPLITS
    split_of = defaultdict(set)
    for r in rows:
        split_of[r["video_id"]].add(r["mode"])
    assert all(len(s) == 1 for s in split_of.values()), "a video is in more than one split"
    keys = [(r["video_id"], r["clip_id"]) for r in rows]
    assert len(set(keys)) == len(keys)


def test_one_file_per_clip(rows):
    listed = {clip_path(r) for r in rows}
    on_disk = set((DEMO / "Raw").glob("*/*.mp4"))
    assert listed == on_disk
    # MMSA convention: clip_id is the clip's number within its video
    assert all(r["clip_id"].isdigit() for r in rows)


def test_labels(rows):
    for r in rows:
        t, a, v, y = (float(r[k]) for k in ("label_T", "label_A", "label_V", "label"))
        assert {t, a, v} <= {-1.0, 0.0, 1.0}
        assert y == t + a + v
        assert -3 <= y <= 3
        assert r["annotation"] == ("Positive" if y > 0 else "Negative" if y < 0 else "Neutral")
        assert r["text"] == r["text"].lower() and r["text"].strip()


def test_each_split_has_disagreeing_modalities(rows):
    for split in SPLITS:
        signs = [
            {np.sign(float(r[k])) for k in ("label_T", "label_A", "label_V")}
            for r in rows
            if r["mode"] == split
        ]
        assert any({-1.0, 1.0} <= s for s in signs), f"no clip with conflicting cues in {split}"


def test_text_alone_is_not_enough(rows):
    # the label differs from the text score on a good share of the clips
    differ = sum(float(r["label"]) != float(r["label_T"]) for r in rows)
    assert differ > len(rows) / 2


def test_media_streams(rows):
    for r in rows:
        path = clip_path(r)
        with av.open(str(path)) as c:
            assert len(c.streams.video) == 1 and len(c.streams.audio) == 1, path
            vs, aus = c.streams.video[0], c.streams.audio[0]
            assert vs.codec_context.name == "h264", path
            assert (vs.codec_context.width, vs.codec_context.height) == (160, 160), path
            assert vs.codec_context.pix_fmt == "yuv420p", path
            assert float(vs.average_rate) == pytest.approx(25.0), path
            assert aus.codec_context.name == "aac", path
            assert aus.codec_context.channels == 1, path
            assert aus.codec_context.sample_rate in (16000, 22050), path
            duration = c.duration / av.time_base
            assert 2.0 - 0.05 <= duration <= 4.0 + 0.05, (path, duration)
            assert vs.frames == 0 or 50 <= vs.frames <= 100, path


def speech_rms(y: np.ndarray, frame: int = 1024, hop: int = 256) -> float:
    n = 1 + max(0, len(y) - frame) // hop
    rms = np.array([np.sqrt(np.mean(y[i * hop : i * hop + frame] ** 2)) for i in range(n)])
    speech = rms[rms > 0.005]
    return float(speech.mean() if speech.size else rms.mean())


def test_loud_voice_louder_than_quiet_voice(rows, audio):
    by_video = defaultdict(lambda: defaultdict(list))
    for r in rows:
        by_video[r["video_id"]][float(r["label_A"])].append(
            speech_rms(audio[(r["video_id"], r["clip_id"])])
        )
    for vid, classes in by_video.items():
        means = {k: np.mean(v) for k, v in classes.items()}
        assert means[1.0] > means[-1.0], vid
        if 0.0 in means:
            assert means[-1.0] < means[0.0] < means[1.0], vid
    loud = [x for c in by_video.values() for x in c[1.0]]
    quiet = [x for c in by_video.values() for x in c[-1.0]]
    assert min(loud) > max(quiet)


def test_silence_around_speech(audio):
    # the audio is the speech itself, not normalised, with some silence before it
    for key, y in audio.items():
        assert np.abs(y).max() < 1.0, key
        assert np.abs(y[: int(0.15 * 22050)]).max() < 0.02, key


# --- face / head pose on a sample of clips, with the pipeline's own extractor -------


@pytest.fixture(scope="module")
def face_tools():
    from thne.features.landmarks import FEATURE_NAMES, LandmarkExtractor

    return LandmarkExtractor(), {n: i for i, n in enumerate(FEATURE_NAMES)}


def _sample(rows, per_class: int = 3) -> list[dict]:
    picked, seen = [], defaultdict(int)
    for r in rows[::3]:
        if seen[r["label_V"]] < per_class:
            seen[r["label_V"]] += 1
            picked.append(r)
    return picked


def _poses(row, face_tools):
    """(pitch, yaw) in degrees per frame, None where no face was found."""
    extractor, col = face_tools
    feats = extractor.extract(clip_path(row)).features
    return [
        (np.degrees(f[col["pose_Rx"]]), np.degrees(f[col["pose_Ry"]]))
        if f[col["face_detected"]]
        else None
        for f in feats
    ]


@pytest.mark.slow
def test_faces_detected_and_head_motion(rows, face_tools):
    sample = _sample(rows)
    assert len(sample) == 9
    n_frames = n_found = 0
    for row in sample:
        poses = _poses(row, face_tools)
        found = np.array([p for p in poses if p is not None])
        n_frames += len(poses)
        n_found += len(found)
        std_pitch, std_yaw = found[:, 0].std(), found[:, 1].std()
        motion = float(row["label_V"])
        where = f"{row['video_id']}/{row['clip_id']} pitch {std_pitch:.2f} yaw {std_yaw:.2f}"
        if motion == 1.0:  # nod
            assert std_pitch > 3.0 and std_pitch > 1.5 * std_yaw, where
        elif motion == -1.0:  # shake
            assert std_yaw > 2.5 and std_yaw > 1.5 * std_pitch, where
        else:  # still
            assert std_pitch < 2.0 and std_yaw < 2.0, where
    assert n_found >= 0.95 * n_frames
