"""Scale-free expression measures from 68 facial landmarks (the ``geom_*`` columns).

Each is a distance or offset between landmarks divided by the outer-eye-corner distance, and
vertical offsets are taken along the face's own vertical, so face size and head roll drop out.
Left/right in ``geom_*_l`` / ``geom_*_r`` are the subject's own left/right (landmarks 42-47 are
the subject's left eye, which appears on the right of the image).
"""

from __future__ import annotations

import numpy as np

GEOM_NAMES = [
    "geom_mouth_open",
    "geom_mouth_width",
    "geom_eye_open_l",
    "geom_eye_open_r",
    "geom_brow_raise_l",
    "geom_brow_raise_r",
    "geom_smile",
]


def geometry(landmarks: np.ndarray) -> np.ndarray:
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
