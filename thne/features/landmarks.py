"""CPU visual features from dlib: 68 facial landmarks, head pose and geometric expression measures.

This is the fallback visual extractor for machines without OpenFace. Per video frame it finds
the largest face with dlib's HOG frontal face detector, fits dlib's 68-point shape predictor
(the iBUG 300-W numbering that OpenFace also uses), estimates head pose with ``cv2.solvePnP``
against a generic 3D face, and derives a few scale-free expression measures.

This module puts the columns together; the work is done in :mod:`thne.features.face_tracking`
(finding the face and its landmarks), :mod:`thne.features.head_pose` (units and conventions of
``pose_*``) and :mod:`thne.features.face_geometry` (``geom_*``); frames are decoded by
:func:`thne.media.gray_frames`.

Column names follow OpenFace 2.x wherever the quantity is the same (``confidence``,
``pose_T*``, ``pose_R*``, ``x_*``, ``y_*``); measures OpenFace has no column for are prefixed
``geom_``. Unlike OpenFace, which repeats its last fit on frames where tracking failed, a frame
without a detectable face gets ``face_detected = 0`` and every other column 0, so downstream code
never mistakes stale values for observations.

``confidence`` equals ``face_detected`` (1 or 0).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib.metadata import version

import numpy as np

from thne.data.clips import Clip
from thne.features.face_geometry import GEOM_NAMES, geometry
from thne.features.face_tracking import FaceModels, FaceTracker, default_predictor_path
from thne.features.head_pose import POSE_NAMES, euler_xyz, solve_pose
from thne.features.store import Extractor
from thne.media import MediaError, gray_frames

__all__ = [
    "FEATURE_NAMES",
    "LandmarkExtractor",
    "LandmarkResult",
    "MediaError",
    "default_predictor_path",
    "extract_landmark_features",
]

N_LANDMARKS = 68

FEATURE_NAMES: list[str] = [
    "face_detected",
    "confidence",
    *POSE_NAMES,
    *(f"x_{i}" for i in range(N_LANDMARKS)),
    *(f"y_{i}" for i in range(N_LANDMARKS)),
    *GEOM_NAMES,
]

_COL_DETECTED = 0
_COL_CONFIDENCE = 1
_COL_POSE = 2
_COL_X = _COL_POSE + len(POSE_NAMES)
_COL_Y = _COL_X + N_LANDMARKS
_COL_GEOM = _COL_Y + N_LANDMARKS


@dataclass(frozen=True)
class LandmarkResult:
    """Per-frame features of one clip.

    ``features`` is float32 [T, len(FEATURE_NAMES)]; ``timestamps`` is float32 [T], seconds from
    the requested clip start.
    """

    features: np.ndarray
    timestamps: np.ndarray
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))


class LandmarkExtractor(FaceModels):
    """Holds the loaded dlib models; create one and reuse it for many clips.

    The options (``predictor_path``, ``upsample``, ``max_detect_width``) are those of
    :class:`~thne.features.face_tracking.FaceModels`.
    """

    def extract(
        self,
        path: str | os.PathLike,
        start: float = 0.0,
        end: float | None = None,
        *,
        detect_every: int = 1,
    ) -> LandmarkResult:
        """Features of every frame whose presentation time lies in [start, end) seconds.

        ``detect_every=k`` runs the face detector on every k-th frame only; in between, the box
        follows the previous frame's landmarks, and the detector runs anyway whenever the
        tracked face no longer looks like the last detected one.
        """
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        if end is not None and end < start:
            raise ValueError(f"end ({end}) is before start ({start})")

        tracker = FaceTracker(self, detect_every)
        # The last frame's head pose starts the next frame's fit (see solve_pose).
        pose: tuple[np.ndarray, np.ndarray] | None = None
        rows: list[np.ndarray] = []
        times: list[float] = []
        for t, gray in gray_frames(path, start, end):
            landmarks = tracker.locate(gray)
            row = np.zeros(len(FEATURE_NAMES), dtype=np.float64)
            if landmarks is None:
                pose = None
            else:
                height, width = gray.shape
                pose = solve_pose(landmarks, width, height, pose)
                _fill_row(row, landmarks, pose)
            rows.append(row)
            times.append(t - start)
        if not rows:
            interval = f"[{start}, {'end' if end is None else end})"
            raise MediaError(f"{os.fspath(path)}: no video frames in the interval {interval} s")
        return LandmarkResult(
            features=np.stack(rows).astype(np.float32, copy=False),
            timestamps=np.asarray(times, dtype=np.float32),
        )


def extract_landmark_features(
    path: str | os.PathLike,
    start: float = 0.0,
    end: float | None = None,
    *,
    detect_every: int = 1,
    extractor: LandmarkExtractor | None = None,
) -> LandmarkResult:
    """Landmark, head-pose and geometric features of the frames of ``path`` in [start, end).

    ``end=None`` means to the end of the video. Pass ``extractor`` when processing many clips so
    the dlib models (about 1.5 s to load) are loaded once.
    """
    if extractor is None:
        extractor = LandmarkExtractor()
    return extractor.extract(path, start, end, detect_every=detect_every)


def _fill_row(row: np.ndarray, landmarks: np.ndarray, pose: tuple[np.ndarray, np.ndarray]) -> None:
    """Write one frame's features into ``row`` (in FEATURE_NAMES order) for a found face."""
    rvec, tvec = pose
    row[_COL_DETECTED] = 1.0
    # dlib's detector score is not comparable across detected and tracked frames, so
    # confidence simply mirrors face_detected; the column exists to match OpenFace's set.
    row[_COL_CONFIDENCE] = 1.0
    row[_COL_POSE : _COL_POSE + 3] = tvec.ravel()
    row[_COL_POSE + 3 : _COL_X] = euler_xyz(rvec)
    row[_COL_X:_COL_Y] = landmarks[:, 0]
    row[_COL_Y:_COL_GEOM] = landmarks[:, 1]
    row[_COL_GEOM:] = geometry(landmarks)


def landmark_extractor(detect_every: int) -> Extractor:
    """dlib landmarks, head pose and geometric measures (:mod:`thne.features.landmarks`)."""
    model = LandmarkExtractor()

    def extract(clip: Clip):
        r = extract_landmark_features(
            clip.media, clip.start, clip.end, detect_every=detect_every, extractor=model
        )
        return r.features, r.timestamps

    return Extractor(
        list(FEATURE_NAMES),
        extract,
        f"dlib-landmarks {version('dlib-bin')}",
        {"extractor": "landmarks", "detect_every": detect_every},
    )
