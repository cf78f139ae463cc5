"""Tests for the dlib landmark extractor, on the real videos in shared/fixtures/media."""

from __future__ import annotations

import csv
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FIXTURES, need
from thne.features.head_pose import euler_xyz
from thne.features.landmarks import (
    FEATURE_NAMES,
    LandmarkExtractor,
    LandmarkResult,
    MediaError,
    extract_landmark_features,
)

MEDIA = FIXTURES / "media"
OPENFACE = FIXTURES / "openface"

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
X_COLS = [COL[f"x_{i}"] for i in range(68)]
Y_COLS = [COL[f"y_{i}"] for i in range(68)]


@pytest.fixture(scope="module")
def media() -> Path:
    return MEDIA


@pytest.fixture(scope="module")
def extractor() -> LandmarkExtractor:
    # Loading the 68-point model takes over a second: share it across the module.
    return LandmarkExtractor()


@pytest.fixture(scope="module")
def astronaut(media: Path, extractor: LandmarkExtractor) -> LandmarkResult:
    return extractor.extract(need(media / "astronaut_75frames.mp4"))


def column(result: LandmarkResult, name: str) -> np.ndarray:
    return result.features[:, COL[name]]


def read_openface(name: str) -> dict[str, np.ndarray]:
    with open(need(OPENFACE / name), newline="") as fh:
        rows = list(csv.reader(fh))
    header = [h.strip() for h in rows[0]]
    values = np.array(rows[1:], dtype=float)
    return {h: values[:, i] for i, h in enumerate(header)}


def test_feature_names_follow_openface() -> None:
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 151
    assert FEATURE_NAMES[:2] == ["face_detected", "confidence"]
    pose = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
    assert FEATURE_NAMES[2:8] == pose
    # OpenFace's order: all x_ then all y_.
    assert FEATURE_NAMES[8:144] == [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]
    assert all(name.startswith("geom_") for name in FEATURE_NAMES[144:])


def test_talking_face_interval(media: Path, extractor: LandmarkExtractor) -> None:
    start, end = 2.0, 8.0
    result = extract_landmark_features(
        need(media / "talking_face.mp4"), start, end, extractor=extractor
    )
    feats, ts = result.features, result.timestamps
    assert feats.dtype == np.float32 and ts.dtype == np.float32
    assert feats.shape == (len(ts), len(FEATURE_NAMES))
    # 23.98 fps over 6 s.
    assert 140 <= len(ts) <= 146

    # Timestamps are relative to the clip start and cover [start, end).
    assert np.all(np.diff(ts) > 0)
    assert 0.0 <= ts[0] < 1 / 23.9
    assert ts[-1] < end - start

    detected = column(result, "face_detected") == 1
    assert detected.mean() >= 0.9
    assert np.array_equal(column(result, "confidence"), column(result, "face_detected"))
    xs, ys = feats[detected][:, X_COLS], feats[detected][:, Y_COLS]
    # Brows, eyes, nose and mouth are inside the 640x360 frame.
    assert xs[:, 17:].min() >= 0 and xs[:, 17:].max() < 640
    assert ys[:, 17:].min() >= 0 and ys[:, 17:].max() < 360
    # The chin dips just below the bottom edge in some frames (OpenFace puts it at y = 370
    # too): allow the jaw contour a small margin outside.
    assert xs.min() >= -20 and xs.max() < 660
    assert ys.min() >= -20 and ys.max() < 380

    # Pose must not flip between mirror solutions from one frame to the next. Around 4-5 s a
    # hand covers her mouth and the pose wobbles (OpenFace's too), so allow a few jumps.
    rot = feats[detected][:, [COL["pose_Rx"], COL["pose_Ry"], COL["pose_Rz"]]]
    jumps = np.abs(np.diff(rot, axis=0)).max(axis=1)
    assert np.mean(jumps > 0.15) < 0.05
    assert jumps.max() < 0.6
    assert np.all(column(result, "pose_Tz")[detected] > 0)


def test_interval_matches_full_decode(media: Path, extractor: LandmarkExtractor) -> None:
    # Seeking into the file must give exactly the frames a full decode gives for the interval.
    path = need(media / "astronaut_noface_frames_26-50.mp4")
    full = extractor.extract(path)
    part = extractor.extract(path, start=1.0, end=1.6)
    in_interval = (full.timestamps >= 1.0) & (full.timestamps < 1.6)
    assert len(part.timestamps) == in_interval.sum() == 15
    np.testing.assert_allclose(part.timestamps + 1.0, full.timestamps[in_interval], atol=1e-5)
    np.testing.assert_array_equal(
        part.features[:, X_COLS + Y_COLS], full.features[in_interval][:, X_COLS + Y_COLS]
    )


def test_astronaut_every_frame_has_a_face(astronaut: LandmarkResult) -> None:
    assert astronaut.features.shape == (75, len(FEATURE_NAMES))
    np.testing.assert_allclose(astronaut.timestamps, np.arange(75) * 0.04, atol=1e-5)
    assert np.all(column(astronaut, "face_detected") == 1)
    assert np.all(column(astronaut, "confidence") == 1)


def test_astronaut_pose_is_frontal(astronaut: LandmarkResult) -> None:
    assert np.abs(column(astronaut, "pose_Rx")).max() < 0.5
    assert np.abs(column(astronaut, "pose_Ry")).max() < 0.5
    rot = astronaut.features[:, [COL["pose_Rx"], COL["pose_Ry"], COL["pose_Rz"]]]
    assert np.abs(np.diff(rot, axis=0)).max() < 0.15
    tz = column(astronaut, "pose_Tz")
    # A 256 px frame with ~90 px between the eyes, focal length = width: roughly 0.25 m away.
    assert np.all(tz > 0)
    assert 150 < np.median(tz) < 800


def test_astronaut_matches_openface(media: Path, astronaut: LandmarkResult) -> None:
    # Same landmark numbering and rotation conventions as OpenFace: compare with its real output.
    ref = read_openface("astronaut_75frames.csv")
    ref_x = np.stack([ref[f"x_{i}"] for i in range(68)], axis=1)
    ref_y = np.stack([ref[f"y_{i}"] for i in range(68)], axis=1)
    iod = np.hypot(ref_x[:, 45] - ref_x[:, 36], ref_y[:, 45] - ref_y[:, 36])
    ours_x, ours_y = astronaut.features[:, X_COLS], astronaut.features[:, Y_COLS]
    error = np.hypot(ours_x - ref_x, ours_y - ref_y).mean(axis=1) / iod
    assert error.max() < 0.08
    # The clip moves and rotates the portrait in the image plane: roll and yaw follow OpenFace.
    for name, min_corr in [("pose_Rz", 0.95), ("pose_Ry", 0.8), ("pose_Tx", 0.95)]:
        assert np.corrcoef(column(astronaut, name), ref[name])[0, 1] > min_corr, name


def test_astronaut_geometry(astronaut: LandmarkResult) -> None:
    geom = {name: column(astronaut, name) for name in FEATURE_NAMES if name.startswith("geom_")}
    assert 0.5 < np.median(geom["geom_mouth_width"]) < 1.0
    for eye in ("geom_eye_open_l", "geom_eye_open_r"):
        assert 0.03 < np.median(geom[eye]) < 0.25
    for brow in ("geom_brow_raise_l", "geom_brow_raise_r"):
        assert 0.1 < np.median(geom[brow]) < 0.4
    # She smiles (OpenFace AU12 about 2.9): mouth corners above the lip centre.
    assert np.all(geom["geom_smile"] > 0.05)


@pytest.mark.parametrize("detect_every", [1, 4])
def test_noface_frames_are_zero(
    media: Path, extractor: LandmarkExtractor, detect_every: int
) -> None:
    # With detect_every=4 frame 26 is a tracked frame: the tracker must notice the cup.
    result = extractor.extract(
        need(media / "astronaut_noface_frames_26-50.mp4"), detect_every=detect_every
    )
    assert result.features.shape == (75, len(FEATURE_NAMES))
    frame_no = np.arange(1, 76)
    cup = (frame_no >= 26) & (frame_no <= 50)
    assert np.all(result.features[cup] == 0)
    assert np.all(column(result, "face_detected")[~cup] == 1)


def test_detect_every_tracks_the_same_landmarks(
    media: Path, extractor: LandmarkExtractor, astronaut: LandmarkResult
) -> None:
    tracked = extractor.extract(need(media / "astronaut_75frames.mp4"), detect_every=5)
    assert np.all(column(tracked, "face_detected") == 1)
    iod = np.hypot(
        column(astronaut, "x_45") - column(astronaut, "x_36"),
        column(astronaut, "y_45") - column(astronaut, "y_36"),
    )
    shift = np.hypot(
        tracked.features[:, X_COLS] - astronaut.features[:, X_COLS],
        tracked.features[:, Y_COLS] - astronaut.features[:, Y_COLS],
    ).mean(axis=1)
    assert np.all(shift / iod < 0.05)


def test_missing_file(tmp_path: Path, extractor: LandmarkExtractor) -> None:
    path = tmp_path / "nope.mp4"
    with pytest.raises(MediaError, match="nope.mp4.*does not exist"):
        extractor.extract(path)


def test_not_a_video(tmp_path: Path, extractor: LandmarkExtractor) -> None:
    path = tmp_path / "fake.mp4"
    path.write_text("this is not a video\n")
    with pytest.raises(MediaError, match="fake.mp4"):
        extractor.extract(path)


def test_audio_only_file(tmp_path: Path, extractor: LandmarkExtractor) -> None:
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.zeros(800, dtype=np.int16).tobytes())
    with pytest.raises(MediaError, match="tone.wav.*no video stream"):
        extractor.extract(path)


def test_interval_beyond_end(media: Path, extractor: LandmarkExtractor) -> None:
    with pytest.raises(MediaError, match=r"astronaut_75frames.mp4.*\[10.0, end\)"):
        extractor.extract(need(media / "astronaut_75frames.mp4"), start=10.0)


def test_bad_arguments(media: Path, extractor: LandmarkExtractor) -> None:
    path = need(media / "astronaut_75frames.mp4")
    with pytest.raises(ValueError, match="detect_every"):
        extractor.extract(path, detect_every=0)
    with pytest.raises(ValueError, match="before start"):
        extractor.extract(path, start=2.0, end=1.0)


def test_euler_convention_round_trip() -> None:
    # R = Rx @ Ry @ Rz (OpenFace's order) must come back as (Rx, Ry, Rz).
    pitch, yaw, roll = 0.3, -0.4, 0.2
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(yaw), np.sin(yaw)
    cz, sz = np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rvec, _ = cv2.Rodrigues(rx @ ry @ rz)
    np.testing.assert_allclose(euler_xyz(rvec), [pitch, yaw, roll], atol=1e-9)
