"""CPU visual features from dlib: 68 facial landmarks, head pose and geometric expression measures.

This is the fallback visual extractor for machines without OpenFace. Per video frame it finds
the largest face with dlib's HOG frontal face detector, fits dlib's 68-point shape predictor
(the iBUG 300-W numbering that OpenFace also uses), estimates head pose with ``cv2.solvePnP``
against a generic 3D face, and derives a few scale-free expression measures.

Column names follow OpenFace 2.x wherever the quantity is the same (``confidence``,
``pose_T*``, ``pose_R*``, ``x_*``, ``y_*``); measures OpenFace has no column for are prefixed
``geom_``. Unlike OpenFace, which repeats its last fit on frames where tracking failed, a frame
without a detectable face gets ``face_detected = 0`` and every other column 0, so downstream code
never mistakes stale values for observations.

Head pose: ``pose_T*`` in millimetres, camera coordinates (x right, y down, z forward), of
the centre of a generic face model; the camera is assumed to have focal length = frame width in
pixels and its principal point at the frame centre (OpenFace assumes 500 px at 640 px width, so
our distances come out about 1.3x its). ``pose_R*`` in radians, R = Rx @ Ry @ Rz as in OpenFace:
Rx > 0 is the head pitched down, Ry > 0 turned towards the subject's right (nose towards the
image left), Rz > 0 tilted clockwise as seen in the image. Pitch, which landmarks constrain
least, is the noisiest angle (a few tenths of a radian off OpenFace under strong expressions or
occlusion); yaw, roll and translation follow OpenFace closely.

``confidence`` equals ``face_detected`` (1 or 0).

Left/right in ``geom_*_l`` / ``geom_*_r`` are the subject's own left/right (landmarks 42-47 are
the subject's left eye, which appears on the right of the image).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import dlib
import numpy as np

from thne.media import MediaError

__all__ = [
    "FEATURE_NAMES",
    "LandmarkExtractor",
    "LandmarkResult",
    "MediaError",
    "default_predictor_path",
    "extract_landmark_features",
]

N_LANDMARKS = 68

POSE_NAMES = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
GEOM_NAMES = [
    "geom_mouth_open",
    "geom_mouth_width",
    "geom_eye_open_l",
    "geom_eye_open_r",
    "geom_brow_raise_l",
    "geom_brow_raise_r",
    "geom_smile",
]
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

# Generic adult face in millimetres, in the head's own frame oriented like the camera's
# (x towards the image right for a frontal face, y down, z away from the camera), so that a face
# looking straight into the camera has zero rotation, as in OpenFace. Values are rounded
# anthropometric averages. Brows, lids and lips move with expression and most of the jaw contour
# slides along the face with yaw, so they are left out. The two contour points at eye level
# (0, 16) lie far behind the face plane and make pitch steadier; mouth corners and chin do move
# with expression, but dropping them made no difference on the test videos, and they add points
# far from the eyes. Pitch is still the least certain angle (see _solve_pose).
_FACE_MODEL_MM = {
    0: (-70.0, 5.0, 40.0),  # face contour at eye level, subject's right
    8: (0.0, 118.0, -16.0),  # menton (chin)
    16: (70.0, 5.0, 40.0),  # face contour at eye level, subject's left
    27: (0.0, -8.0, -20.0),  # nasion (top of the nose bridge)
    30: (0.0, 40.0, -38.0),  # pronasale (nose tip)
    31: (-12.0, 47.0, -20.0),  # nostril, subject's right
    33: (0.0, 50.0, -24.0),  # subnasale
    35: (12.0, 47.0, -20.0),  # nostril, subject's left
    36: (-45.0, 0.0, 0.0),  # outer corner, subject's right eye
    39: (-15.0, 1.0, -12.0),  # inner corner, subject's right eye
    42: (15.0, 1.0, -12.0),  # inner corner, subject's left eye
    45: (45.0, 0.0, 0.0),  # outer corner, subject's left eye
    48: (-25.0, 72.0, -12.0),  # mouth corner, subject's right
    54: (25.0, 72.0, -12.0),  # mouth corner, subject's left
}
_POSE_IDX = np.array(sorted(_FACE_MODEL_MM), dtype=np.intp)
_MODEL_POINTS = np.array([_FACE_MODEL_MM[i] for i in _POSE_IDX], dtype=np.float64)
# Centring the model makes pose_T* the position of the middle of the face (roughly behind the
# nose base), which is what OpenFace's translation also refers to.
_MODEL_POINTS -= _MODEL_POINTS.mean(axis=0)
_MODEL_OUTER_EYE_MM = 90.0

# Appearance check for tracked frames: a small face patch normalised by the eye centres is
# compared with the one from the last detection. Expression and pose change it a little within
# a few frames; a different object under the old box changes it completely.
_PATCH_SIZE = 40
_PATCH_EYE_Y = 13.0
_PATCH_EYE_DX = 18.0
_MIN_TRACK_NCC = 0.5

# dlib's HOG detector finds faces from about 80 px; keeping a known face at 100 px or more when
# shrinking a frame for detection leaves room for it to shrink a little before it is missed.
_DETECT_FACE_PX = 100.0


@dataclass(frozen=True)
class LandmarkResult:
    """Per-frame features of one clip.

    ``features`` is float32 [T, len(FEATURE_NAMES)]; ``timestamps`` is float32 [T], seconds from
    the requested clip start.
    """

    features: np.ndarray
    timestamps: np.ndarray
    feature_names: list[str] = field(default_factory=lambda: list(FEATURE_NAMES))


def default_predictor_path() -> Path:
    """Locate dlib's 68-point shape predictor shipped in the ``face_recognition_models`` package."""
    try:
        import face_recognition_models

        return Path(face_recognition_models.pose_predictor_model_location())
    except ImportError:
        # The package's __init__ needs pkg_resources, which recent setuptools no longer provide;
        # its data files are still there, so find the package directory without importing it.
        pass
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "dlib's 68-point landmark model was not found: install the package "
            "'face_recognition_models' or pass predictor_path"
        )
    pkg_dir = Path(next(iter(spec.submodule_search_locations)))
    return pkg_dir / "models" / "shape_predictor_68_face_landmarks.dat"


class LandmarkExtractor:
    """Holds the loaded dlib models; create one and reuse it for many clips.

    ``upsample``: how many times dlib's detector doubles the image before searching. dlib's HOG
    detector finds faces of roughly 80 px and larger; 0 (the default) is fastest, 1 also finds
    faces down to about 40 px at four times the detection cost.
    ``max_detect_width``: frames wider than this are shrunk to this width for detection only,
    but never so far that the face last detected in the video would become narrower than about
    100 px. The box is mapped back, landmarks are always fitted on the full-resolution frame,
    and a miss on a shrunk frame is retried at full resolution. None disables shrinking.
    """

    def __init__(
        self,
        predictor_path: str | os.PathLike | None = None,
        *,
        upsample: int = 0,
        max_detect_width: int | None = 320,
    ) -> None:
        path = Path(predictor_path) if predictor_path is not None else default_predictor_path()
        if not path.is_file():
            raise RuntimeError(f"dlib shape predictor model file not found: {path}")
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if max_detect_width is not None and max_detect_width < 80:
            raise ValueError(f"max_detect_width must be >= 80 px or None, got {max_detect_width}")
        self.predictor_path = path
        self.upsample = upsample
        self.max_detect_width = max_detect_width
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))

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

        tracker = _FaceTracker(self, detect_every)
        rows: list[np.ndarray] = []
        times: list[float] = []
        for t, gray in _iter_gray_frames(path, start, end):
            rows.append(tracker.process(gray))
            times.append(t - start)
        if not rows:
            interval = f"[{start}, {'end' if end is None else end})"
            raise MediaError(f"{os.fspath(path)}: no video frames in the interval {interval} s")
        return LandmarkResult(
            features=np.stack(rows).astype(np.float32, copy=False),
            timestamps=np.asarray(times, dtype=np.float32),
        )

    def detect(self, gray: np.ndarray, face_width: float | None = None) -> np.ndarray | None:
        """Box (left, top, right, bottom) in frame pixels of the largest detected face, or None.

        ``face_width``, the width in pixels of the face last seen in this video, lets a large
        frame be shrunk just enough for that face to stay comfortably detectable.
        """
        for scale in self._detection_scales(gray.shape[1], face_width):
            box = self._detect_at(gray, scale)
            if box is not None:
                return box
        return None

    def _detection_scales(self, width: int, face_width: float | None) -> list[float]:
        first = 1.0
        if self.max_detect_width is not None and width > self.max_detect_width:
            first = self.max_detect_width / width
        if face_width is not None:
            # Never shrink a face already seen below what the detector reliably finds.
            first = min(1.0, max(first, _DETECT_FACE_PX / max(face_width, 1.0)))
        # Shrinking loses faces smaller than about 80 px after scaling, so a miss on the
        # shrunk frame is confirmed on the full-resolution one (costly only on faceless frames).
        return [first] if first >= 1.0 else [first, 1.0]

    def _detect_at(self, gray: np.ndarray, scale: float) -> np.ndarray | None:
        image = gray
        if scale < 1.0:
            height, width = gray.shape
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
            scale_x, scale_y = size[0] / width, size[1] / height
        else:
            scale_x = scale_y = 1.0
        rects = self.detector(image, self.upsample)
        if len(rects) == 0:
            return None
        best = max(rects, key=lambda r: r.width() * r.height())
        box = np.array([best.left(), best.top(), best.right() + 1, best.bottom() + 1], float)
        return box / np.array([scale_x, scale_y, scale_x, scale_y])

    def fit(self, gray: np.ndarray, box: np.ndarray) -> np.ndarray:
        """The 68 landmarks, float [68, 2] (x, y) in pixels, inside the given face box."""
        left, top, right, bottom = (round(v) for v in box)
        shape = self.predictor(gray, dlib.rectangle(left, top, right - 1, bottom - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


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


# --------------------------------------------------------------------------------------------
# Decoding


def _iter_gray_frames(
    path: str | os.PathLike, start: float, end: float | None
) -> Iterator[tuple[float, np.ndarray]]:
    """(presentation time in seconds, grayscale uint8 frame) for frames with start <= t < end."""
    name = os.fspath(path)
    if not Path(name).is_file():
        reason = "is a directory, not a video file" if Path(name).is_dir() else "does not exist"
        raise MediaError(f"{name}: {reason}")
    try:
        container = av.open(name)
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{name}: cannot open as media ({exc})") from exc
    with container:
        if not container.streams.video:
            raise MediaError(f"{name}: has no video stream")
        stream = container.streams.video[0]
        try:
            yield from _decode_interval(container, stream, start, end)
        except av.error.FFmpegError as exc:
            raise MediaError(f"{name}: video decoding failed ({exc})") from exc


def _decode_interval(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    start: float,
    end: float | None,
) -> Iterator[tuple[float, np.ndarray]]:
    # Long source videos hold many clips: jump to the keyframe before the clip instead of
    # decoding from the beginning each time. If the demuxer lands after `start` (inexact seeking
    # in some containers), decode from the beginning rather than silently lose frames.
    if start > 0 and _seek_before(container, stream, start):
        frames = _timed_frames(container, stream)
        first = next(frames, None)
        if first is not None and first[0] <= start:
            yield from _in_interval(itertools.chain([first], frames), start, end)
            return
        container.seek(0, stream=stream)
    yield from _in_interval(_timed_frames(container, stream), start, end)


def _timed_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[tuple[float, av.VideoFrame]]:
    for index, frame in enumerate(container.decode(stream)):
        yield _frame_time(frame, stream, index), frame


def _in_interval(
    frames: Iterator[tuple[float, av.VideoFrame]], start: float, end: float | None
) -> Iterator[tuple[float, np.ndarray]]:
    for t, frame in frames:
        if t < start:
            continue
        if end is not None and t >= end:
            return
        yield t, frame.to_ndarray(format="gray")


def _seek_before(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: float
) -> bool:
    if stream.time_base is None:
        return False
    offset = int(start / stream.time_base) + (stream.start_time or 0)
    try:
        container.seek(offset, stream=stream, backward=True, any_frame=False)
    except av.error.FFmpegError:
        container.seek(0, stream=stream)
        return False
    return True


def _frame_time(frame: av.VideoFrame, stream: av.video.stream.VideoStream, index: int) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    # Streams without timestamps (raw elementary streams): assume a constant frame rate.
    rate = stream.average_rate or stream.guessed_rate or 25
    return index / float(rate)


# --------------------------------------------------------------------------------------------
# Per-frame processing


class _FaceTracker:
    """Per-clip state: where the face was, what it looked like, and the last head pose."""

    def __init__(self, extractor: LandmarkExtractor, detect_every: int) -> None:
        self.extractor = extractor
        self.detect_every = detect_every
        self.frames_since_detection = 0
        self.landmarks: np.ndarray | None = None
        # Detector box relative to the landmarks' bounding box: (centre offset x, y, width,
        # height) in units of the landmark box size, so a box can be rebuilt around moved points.
        self.box_from_landmarks: np.ndarray | None = None
        self.template: np.ndarray | None = None
        self.pose: tuple[np.ndarray, np.ndarray] | None = None
        self.face_width: float | None = None

    def process(self, gray: np.ndarray) -> np.ndarray:
        landmarks = self._locate(gray)
        row = np.zeros(len(FEATURE_NAMES), dtype=np.float64)
        if landmarks is None:
            self.landmarks = None
            self.pose = None
            return row
        self.landmarks = landmarks
        height, width = gray.shape
        self.pose = _solve_pose(landmarks, width, height, self.pose)
        rvec, tvec = self.pose
        row[_COL_DETECTED] = 1.0
        # dlib's detector score is not comparable across detected and tracked frames, so
        # confidence simply mirrors face_detected; the column exists to match OpenFace's set.
        row[_COL_CONFIDENCE] = 1.0
        row[_COL_POSE : _COL_POSE + 3] = tvec.ravel()
        row[_COL_POSE + 3 : _COL_X] = _euler_xyz(rvec)
        row[_COL_X:_COL_Y] = landmarks[:, 0]
        row[_COL_Y:_COL_GEOM] = landmarks[:, 1]
        row[_COL_GEOM:] = _geometry(landmarks)
        return row

    def _locate(self, gray: np.ndarray) -> np.ndarray | None:
        due = self.frames_since_detection + 1 >= self.detect_every
        if self.landmarks is not None and not due:
            tracked = self._track(gray)
            if tracked is not None:
                self.frames_since_detection += 1
                return tracked
        return self._detect(gray)

    def _detect(self, gray: np.ndarray) -> np.ndarray | None:
        self.frames_since_detection = 0
        box = self.extractor.detect(gray, self.face_width)
        if box is None:
            self.template = None
            return None
        self.face_width = float(box[2] - box[0])
        landmarks = self.extractor.fit(gray, box)
        if self.detect_every > 1:
            self.box_from_landmarks = _box_relative_to(box, landmarks)
            self.template = _face_patch(gray, landmarks)
        return landmarks

    def _track(self, gray: np.ndarray) -> np.ndarray | None:
        """Refit inside a box that follows the last landmarks; None when the face is lost."""
        if self.box_from_landmarks is None or self.template is None or self.landmarks is None:
            return None
        box = _box_around(self.landmarks, self.box_from_landmarks)
        height, width = gray.shape
        # With most of the box off the frame the predictor extrapolates blindly: let the
        # detector decide instead.
        if box[0] < -0.25 * (box[2] - box[0]) or box[2] > width + 0.25 * (box[2] - box[0]):
            return None
        if box[1] < -0.25 * (box[3] - box[1]) or box[3] > height + 0.25 * (box[3] - box[1]):
            return None
        landmarks = self.extractor.fit(gray, box)
        patch = _face_patch(gray, landmarks)
        if patch is None or _ncc(patch, self.template) < _MIN_TRACK_NCC:
            return None
        return landmarks


def _landmark_box(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    lo = landmarks.min(axis=0)
    hi = landmarks.max(axis=0)
    size = max(float(np.sqrt(np.prod(hi - lo))), 1.0)
    return (lo + hi) / 2.0, size


def _box_relative_to(box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    centre, size = _landmark_box(landmarks)
    box_centre = (box[:2] + box[2:]) / 2.0
    return np.concatenate([(box_centre - centre) / size, (box[2:] - box[:2]) / size])


def _box_around(landmarks: np.ndarray, relative: np.ndarray) -> np.ndarray:
    centre, size = _landmark_box(landmarks)
    box_centre = centre + relative[:2] * size
    half = relative[2:] * size / 2.0
    return np.concatenate([box_centre - half, box_centre + half])


def _face_patch(gray: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """Small float patch of the face, rotated and scaled so the eye centres sit at fixed spots."""
    eye_r = landmarks[36:42].mean(axis=0)
    eye_l = landmarks[42:48].mean(axis=0)
    delta = eye_l - eye_r
    distance = float(np.hypot(*delta))
    if distance < 2.0:
        return None
    scale = _PATCH_EYE_DX / distance
    cos, sin = scale * delta / distance
    rotate = np.array([[cos, sin], [-sin, cos]])
    target = np.array([(_PATCH_SIZE - _PATCH_EYE_DX) / 2.0, _PATCH_EYE_Y])
    shift = target - rotate @ eye_r
    matrix = np.hstack([rotate, shift[:, None]])
    patch = cv2.warpAffine(
        gray,
        matrix,
        (_PATCH_SIZE, _PATCH_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return patch.astype(np.float32)


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    # A flat patch carries no evidence of a face.
    return float((a * b).sum()) / denom if denom > 1e-6 else 0.0


def _camera_matrix(width: int, height: int) -> np.ndarray:
    focal = float(width)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def _frontal_guess(image_points: np.ndarray, camera: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pose of an upright face looking at the camera, at the distance its eye spacing implies."""
    outer_eyes = np.linalg.norm(image_points[_POSE_IDX == 45] - image_points[_POSE_IDX == 36])
    focal, cx, cy = camera[0, 0], camera[0, 2], camera[1, 2]
    tz = focal * _MODEL_OUTER_EYE_MM / max(float(outer_eyes), 1.0)
    u, v = image_points.mean(axis=0)
    tvec = np.array([[(u - cx) * tz / focal], [(v - cy) * tz / focal], [tz]])
    return np.zeros((3, 1)), tvec


def _pose_plausible(rvec: np.ndarray, tvec: np.ndarray) -> bool:
    # The frontal detector cannot see faces turned 90 degrees or more, and a face is always in
    # front of the camera; anything else is the mirror-image local minimum of the PnP problem.
    return float(tvec[2, 0]) > 0 and float(np.linalg.norm(rvec)) < math.pi / 2


def _solve_pose(
    landmarks: np.ndarray,
    width: int,
    height: int,
    previous: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """(rotation vector, translation in mm) of the generic face model in camera coordinates.

    The iterative solver is started from the previous frame's pose (or a frontal guess) because
    solvePnP's own initialisation can jump between the two mirror-image solutions that a nearly
    flat set of points allows, making pose flip sign from one frame to the next. If neither start
    gives a plausible pose, the frontal guess itself is returned.
    """
    camera = _camera_matrix(width, height)
    image_points = landmarks[_POSE_IDX].astype(np.float64)
    if previous is not None:
        pose = _refine_pose(image_points, camera, previous)
        if pose is not None:
            return pose
    guess = _frontal_guess(image_points, camera)
    return _refine_pose(image_points, camera, guess) or guess


def _refine_pose(
    image_points: np.ndarray, camera: np.ndarray, start: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    rvec0, tvec0 = start
    ok, rvec, tvec = cv2.solvePnP(
        _MODEL_POINTS,
        image_points,
        camera,
        None,
        rvec0.copy(),
        tvec0.copy(),
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    return (rvec, tvec) if ok and _pose_plausible(rvec, tvec) else None


def _euler_xyz(rvec: np.ndarray) -> np.ndarray:
    """(Rx pitch, Ry yaw, Rz roll) in radians with R = Rx @ Ry @ Rz, OpenFace's convention.

    Rotations are about the camera axes (x right, y down, z forward), right-handed; yaw is kept
    in [-pi/2, pi/2], which a face the frontal detector can see never leaves.
    """
    rot, _ = cv2.Rodrigues(rvec)
    yaw = math.asin(max(-1.0, min(1.0, rot[0, 2])))
    pitch = math.atan2(-rot[1, 2], rot[2, 2])
    roll = math.atan2(-rot[0, 1], rot[0, 0])
    return np.array([pitch, yaw, roll])


def _geometry(landmarks: np.ndarray) -> np.ndarray:
    """The geom_* measures, each divided by the outer-eye-corner distance so scale drops out."""
    p = landmarks

    def dist(i: int, j: int) -> float:
        return float(np.hypot(*(p[i] - p[j])))

    interocular = max(dist(36, 45), 1e-6)
    # Unit vector pointing down the face (perpendicular to the eye line), so head roll does not
    # leak into the vertical measures.
    across = (p[45] - p[36]) / interocular
    down = np.array([-across[1], across[0]])

    # Inner-lip gap at the centre: 0 with lips closed, grows as the jaw drops.
    mouth_open = dist(62, 66)
    # Mouth-corner distance: grows with smiles and lip stretching, shrinks with puckering.
    mouth_width = dist(48, 54)
    # Eyelid gap, mean of the two upper/lower lid pairs: blinks, squints and widened eyes.
    eye_open_l = (dist(43, 47) + dist(44, 46)) / 2.0
    eye_open_r = (dist(37, 41) + dist(38, 40)) / 2.0
    # Height of the brow centre above the eye centre along the face's vertical: brow raising
    # and lowering (AU1/2 vs AU4).
    brow_raise_l = float((p[42:48].mean(axis=0) - p[22:27].mean(axis=0)) @ down)
    brow_raise_r = float((p[36:42].mean(axis=0) - p[17:22].mean(axis=0)) @ down)
    # How far the mouth corners sit above the middle of the lips (mean of upper and lower lip
    # centres), along the face's vertical: positive when the corners are pulled up (smile,
    # AU12), negative when pulled down (AU15).
    lip_centre = (p[51] + p[57]) / 2.0
    smile = float((lip_centre - (p[48] + p[54]) / 2.0) @ down)

    values = [mouth_open, mouth_width, eye_open_l, eye_open_r, brow_raise_l, brow_raise_r, smile]
    return np.asarray(values) / interocular
