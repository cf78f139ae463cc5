"""Finding the face and its 68 landmarks in each frame with dlib: detection and tracking.

dlib's HOG frontal face detector finds the largest face, and its 68-point shape predictor (the
iBUG 300-W numbering that OpenFace also uses) fits the landmarks inside the face's box. With
``detect_every`` > 1 the detector runs on every k-th frame only; in between, the box follows the
previous frame's landmarks for as long as the face still looks like the one last detected.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import dlib
import numpy as np

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


class FaceModels:
    """dlib's face detector and 68-point shape predictor, loaded once.

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


class FaceTracker:
    """Per-clip state: where the face was and what it looked like when last detected."""

    def __init__(self, extractor: FaceModels, detect_every: int) -> None:
        self.extractor = extractor
        self.detect_every = detect_every
        self.frames_since_detection = 0
        self.landmarks: np.ndarray | None = None
        # Detector box relative to the landmarks' bounding box: (centre offset x, y, width,
        # height) in units of the landmark box size, so a box can be rebuilt around moved points.
        self.box_from_landmarks: np.ndarray | None = None
        self.template: np.ndarray | None = None
        self.face_width: float | None = None

    def locate(self, gray: np.ndarray) -> np.ndarray | None:
        """The 68 landmarks of the face in this frame, float [68, 2] (x, y) in pixels, or None
        when no face is found."""
        self.landmarks = self._find(gray)
        return self.landmarks

    def _find(self, gray: np.ndarray) -> np.ndarray | None:
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
