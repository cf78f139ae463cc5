"""Head pose from 68 facial landmarks: ``cv2.solvePnP`` against a generic 3D face.

``pose_T*`` in millimetres, camera coordinates (x right, y down, z forward), of the centre of a
generic face model; the camera is assumed to have focal length = frame width in pixels and its
principal point at the frame centre (OpenFace assumes 500 px at 640 px width, so our distances
come out about 1.3x its). ``pose_R*`` in radians, R = Rx @ Ry @ Rz as in OpenFace: Rx > 0 is the
head pitched down, Ry > 0 turned towards the subject's right (nose towards the image left),
Rz > 0 tilted clockwise as seen in the image. Pitch, which landmarks constrain least, is the
noisiest angle (a few tenths of a radian off OpenFace under strong expressions or occlusion);
yaw, roll and translation follow OpenFace closely.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

POSE_NAMES = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]

# Generic adult face in millimetres, in the head's own frame oriented like the camera's
# (x towards the image right for a frontal face, y down, z away from the camera), so that a face
# looking straight into the camera has zero rotation, as in OpenFace. Values are rounded
# anthropometric averages. Brows, lids and lips move with expression and most of the jaw contour
# slides along the face with yaw, so they are left out. The two contour points at eye level
# (0, 16) lie far behind the face plane and make pitch steadier; mouth corners and chin do move
# with expression, but dropping them made no difference on the test videos, and they add points
# far from the eyes. Pitch is still the least certain angle (see solve_pose).
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


def solve_pose(
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


def euler_xyz(rvec: np.ndarray) -> np.ndarray:
    """(Rx pitch, Ry yaw, Rz roll) in radians with R = Rx @ Ry @ Rz, OpenFace's convention.

    Rotations are about the camera axes (x right, y down, z forward), right-handed; yaw is kept
    in [-pi/2, pi/2], which a face the frontal detector can see never leaves.
    """
    rot, _ = cv2.Rodrigues(rvec)
    yaw = math.asin(max(-1.0, min(1.0, rot[0, 2])))
    pitch = math.atan2(-rot[1, 2], rot[2, 2])
    roll = math.atan2(-rot[0, 1], rot[0, 0])
    return np.array([pitch, yaw, roll])
