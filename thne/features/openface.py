"""Visual features from OpenFace 2.x ``FeatureExtraction``: running it, reading its CSVs, slicing.

OpenFace processes whole media files and writes one CSV per file (``<out_dir>/<stem>.csv``,
714 columns, one row per video frame). This module

* runs it once for a whole shard of media files (:func:`run_openface`, through the bash script
  :data:`RUN_SCRIPT`, which the workflow also runs, inside the OpenFace container where asked),
  because its start-up costs 1-2 s and one call accepts many ``-f`` inputs;
* reads a CSV into named feature groups (:func:`read_openface_csv`), zeroing the frames where
  tracking failed;
* cuts the per-video frames into clips (:func:`slice_clips`), so a long video holding many
  clips is processed once;
* reads a finished run for a list of manifest clips (:func:`extract_openface_clips`).

OpenFace's habits this module guards against:

* It exits 0 even when it cannot open an input; it then writes no CSV. Every expected CSV is
  therefore checked to exist and to parse.
* It stops at the first ``-f`` input it cannot open and skips every later one. Inputs that do
  not exist are kept out of the call, and when an existing input still fails, the inputs after
  it are run again in a further call (see :data:`RUN_SCRIPT`).
* On frames where tracking failed (``success == 0``) it repeats its last fit for pose, landmarks
  and shape parameters and writes 0 only for gaze. Such frames get ``face_detected = 0`` and
  every other feature 0, as in the dlib landmark extractor, so stale values are never mistaken
  for observations.
* Its ``timestamp`` is the frame index divided by the frame rate the container reports, in
  seconds from the start of the file, not the presentation time of the frame.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from thne.data.clips import Clip
from thne.errors import InputError
from thne.features.store import Extractor
from thne.io import atomic_path
from thne.media import MediaError

__all__ = [
    "CONTAINER_BINARY",
    "DEFAULT_GROUPS",
    "GROUPS",
    "LOG_NAME",
    "RUN_SCRIPT",
    "MediaError",
    "OpenFaceError",
    "OpenFaceFrames",
    "OpenFaceNotFound",
    "extract_openface_clips",
    "feature_names",
    "plan_inputs",
    "read_openface_csv",
    "read_openface_run",
    "read_plan",
    "run_openface",
    "slice_clips",
    "write_plan",
]

# Action units OpenFace 2.x estimates: intensities (_r) for 17, presence (_c) for 18; AU28 (lip
# suck) has only a presence classifier.
_AU_R = ["01", "02", "04", "05", "06", "07", "09", "10", "12", "14", "15", "17", "20", "23"]
_AU_R += ["25", "26", "45"]
_AU_C = [*_AU_R[:-1], "28", "45"]
_N_LANDMARKS = 68
_N_PDM = 34

GROUPS: dict[str, tuple[str, ...]] = {
    # Action unit intensities, 0 (absent) to 5 (maximum).
    "aus_r": tuple(f"AU{au}_r" for au in _AU_R),
    # Action unit presence, 0 or 1.
    "aus_c": tuple(f"AU{au}_c" for au in _AU_C),
    # Head translation (mm, camera coordinates) and rotation (radians).
    "pose": ("pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"),
    # Gaze direction unit vectors of the two eyes and the mean gaze angles (radians).
    "gaze": (
        "gaze_0_x",
        "gaze_0_y",
        "gaze_0_z",
        "gaze_1_x",
        "gaze_1_y",
        "gaze_1_z",
        "gaze_angle_x",
        "gaze_angle_y",
    ),
    # The 68 facial landmarks in pixels: all x, then all y.
    "landmarks_2d": tuple(f"{axis}_{i}" for axis in ("x", "y") for i in range(_N_LANDMARKS)),
    # The 68 landmarks in mm, camera coordinates: all X, then all Y, then all Z.
    "landmarks_3d": tuple(f"{axis}_{i}" for axis in ("X", "Y", "Z") for i in range(_N_LANDMARKS)),
    # Point distribution model: rigid parameters (scale, rotation, 2D translation), then the
    # 34 non-rigid shape parameters.
    "pdm": (
        "p_scale",
        "p_rx",
        "p_ry",
        "p_rz",
        "p_tx",
        "p_ty",
        *(f"p_{i}" for i in range(_N_PDM)),
    ),
}

DEFAULT_GROUPS: tuple[str, ...] = ("aus_r", "aus_c", "pose", "gaze")

# Where the binary lives inside docker://algebr/openface:latest, the image Snakemake uses when
# run with --sdm apptainer (the run script looks there last).
CONTAINER_BINARY = "/home/openface-build/build/bin/FeatureExtraction"

# Runs FeatureExtraction over a plan of media files; bash only, so it runs inside the container.
RUN_SCRIPT = Path(__file__).with_name("openface_run.sh")

LOG_NAME = "openface.log"

# Columns read besides the feature groups.
_TIMESTAMP = "timestamp"
_SUCCESS = "success"


class OpenFaceError(InputError):
    """OpenFace could not be run, or failed as a whole (not just for one video)."""


class OpenFaceNotFound(OpenFaceError):
    """No usable OpenFace ``FeatureExtraction`` binary."""


@dataclass(frozen=True)
class OpenFaceFrames:
    """Per-frame features of one OpenFace CSV.

    ``timestamps`` is float64 [N], OpenFace's ``timestamp`` column (seconds from the start of the
    media file); ``features`` is float32 [N, len(names)], columns in ``names`` order, which is
    :func:`feature_names` of the groups read.
    """

    timestamps: np.ndarray
    features: np.ndarray
    names: tuple[str, ...]


def feature_names(groups: Sequence[str] = DEFAULT_GROUPS) -> list[str]:
    """``face_detected`` followed by the OpenFace columns of ``groups``, in that order."""
    groups = _check_groups(groups)
    return ["face_detected", *(col for group in groups for col in GROUPS[group])]


def _check_groups(groups: Sequence[str]) -> tuple[str, ...]:
    # A bare string would otherwise be taken as a sequence of one-letter group names.
    if isinstance(groups, str):
        groups = (groups,)
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        raise ValueError(f"unknown OpenFace feature groups {unknown}; known: {list(GROUPS)}")
    if len(set(groups)) != len(groups):
        raise ValueError(f"OpenFace feature groups repeated in {list(groups)}")
    return tuple(groups)


# --------------------------------------------------------------------------------------------
# Reading CSVs


def read_openface_csv(
    path: str | os.PathLike, groups: Sequence[str] = DEFAULT_GROUPS
) -> OpenFaceFrames:
    """Read an OpenFace ``FeatureExtraction`` CSV into the columns of ``groups``.

    Accepts both header styles (names separated by ``,`` or, in older builds, ``, ``). Frames
    with ``success == 0`` get every feature 0 including ``face_detected``; the others get
    ``face_detected = 1``. Raises :class:`MediaError` naming the file when it is missing, lacks
    expected columns, has a line with the wrong number of fields (a truncated last line), holds
    non-numeric values, or has no data rows.
    """
    names = feature_names(groups)
    wanted = [_TIMESTAMP, _SUCCESS, *names[1:]]
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MediaError(f"{path}: OpenFace CSV does not exist") from None
    except OSError as exc:
        raise MediaError(f"{path}: OpenFace CSV cannot be read ({exc})") from exc

    if not data.strip():
        raise MediaError(f"{path}: OpenFace CSV is empty")
    header_end = data.find(b"\n")
    header_line = data if header_end < 0 else data[:header_end]
    header = [name.strip() for name in header_line.decode("utf-8", "replace").split(",")]
    # The first occurrence wins should a name repeat; OpenFace writes each once.
    position: dict[str, int] = {}
    for i, name in enumerate(header):
        position.setdefault(name, i)
    missing = [name for name in wanted if name not in position]
    if missing:
        shown = ", ".join(missing[:12]) + (
            f" and {len(missing) - 12} more" if len(missing) > 12 else ""
        )
        raise MediaError(
            f"{path}: not a complete OpenFace FeatureExtraction CSV: {len(missing)} expected "
            f"column(s) missing ({shown}); {len(header)} column(s) in its header"
        )
    _check_field_counts(data, len(header), path)

    columns = [position[name] for name in wanted]
    try:
        frame = pd.read_csv(
            io.BytesIO(data),
            header=0,
            usecols=sorted(set(columns)),
            dtype=np.float64,
            # Older OpenFace builds separate fields with ", ".
            skipinitialspace=True,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise MediaError(f"{path}: OpenFace CSV cannot be parsed ({exc})") from exc
    if len(frame) == 0:
        raise MediaError(f"{path}: OpenFace CSV has a header but no data rows")

    # pandas returns the selected columns in file order; put them in `wanted` order.
    order = {col: k for k, col in enumerate(sorted(set(columns)))}
    values = frame.to_numpy(dtype=np.float64)[:, [order[c] for c in columns]]
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise MediaError(
            f"{path}: line {row + 2}: column {wanted[col]} is not a finite number "
            f"({int(bad.sum())} such value(s) in the file)"
        )
    timestamps = values[:, 0].copy()
    success = values[:, 1]
    if not np.isin(success, (0.0, 1.0)).all():
        row = int(np.flatnonzero(~np.isin(success, (0.0, 1.0)))[0])
        raise MediaError(f"{path}: line {row + 2}: success is {success[row]:g}, not 0 or 1")

    detected = success == 1.0
    features = np.zeros((len(values), len(names)), dtype=np.float32)
    features[detected, 0] = 1.0
    features[detected, 1:] = values[detected, 2:]
    return OpenFaceFrames(timestamps=timestamps, features=features, names=tuple(names))


def _check_field_counts(data: bytes, n_fields: int, path: Path) -> None:
    """Raise when a line has a different number of fields than the header.

    pandas pads a short row with NaN and only complains about long ones, so a file cut in the
    middle of its last line (a killed OpenFace run, a full disk) would otherwise parse.
    """
    lines = data.split(b"\n")
    # OpenFace ends every row with a newline: a last line without one was cut off, even when
    # the cut happened to fall inside its last field and left the right number of fields.
    if lines[-1].strip():
        raise MediaError(
            f"{path}: line {len(lines)} is truncated (the file does not end with a newline; "
            "OpenFace was probably interrupted while writing it)"
        )
    expected_commas = n_fields - 1
    for number, line in enumerate(lines[1:-1], start=2):
        commas = line.count(b",")
        if commas != expected_commas:
            raise MediaError(
                f"{path}: line {number} has {commas + 1} field(s), the header has {n_fields}"
                + (" (line truncated)" if commas < expected_commas else "")
            )


# --------------------------------------------------------------------------------------------
# Running OpenFace


def plan_inputs(media: Iterable[str]) -> list[tuple[str, str]]:
    """(input name, media file) for each distinct media file, in sorted order.

    OpenFace names each CSV after its input's file name, and media files may share one (MMSA
    copies reuse ``1.mp4`` in every video folder), so each gets a unique name ``m00000.mp4``,
    ``m00001.mp4``, ... (the media's own suffix kept) under which it is linked for OpenFace.
    """
    if isinstance(media, (str, os.PathLike)):
        raise TypeError("media must be a collection of paths, not a single path")
    return [
        (f"m{i:05d}{Path(m).suffix}", str(m)) for i, m in enumerate(sorted({str(m) for m in media}))
    ]


def write_plan(rows: Sequence[tuple[str, str]], path: str | os.PathLike) -> None:
    """Write a plan (input name, media file) as the TSV :data:`RUN_SCRIPT` reads."""
    for name, media in rows:
        if "\t" in name + media or "\n" in name + media:
            raise ValueError(f"media path {media!r} holds a tab or newline; rename the file")
    with atomic_path(path) as tmp:
        Path(tmp).write_text("input\tmedia\n" + "".join(f"{n}\t{m}\n" for n, m in rows))


def read_plan(path: str | os.PathLike) -> dict[str, str]:
    """input name -> media file, from a plan TSV."""
    lines = Path(path).read_text().splitlines()
    if not lines or lines[0] != "input\tmedia":
        raise ValueError(f"{path}: not an OpenFace plan (header must be 'input<TAB>media')")
    return dict(line.split("\t", 1) for line in lines[1:] if line)


def run_openface(
    plan: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    binary: str | None = None,
    threads: int = 1,
) -> Path:
    """Run OpenFace over every media file of ``plan`` in one call; return the log's path.

    Runs :data:`RUN_SCRIPT`, the same script the workflow runs (inside the OpenFace container
    with ``--sdm apptainer``): OpenFace is ``binary`` when given, else ``FeatureExtraction`` on
    PATH, else :data:`CONTAINER_BINARY`. Its output goes to ``<out_dir>/openface.log``, which is
    kept. ``threads`` caps the BLAS/OpenMP/OpenCV thread pools of OpenFace's libraries.

    Raises :class:`OpenFaceNotFound`, listing what was tried, when no OpenFace is usable.
    Inputs OpenFace wrote no CSV for, or crashed on, are listed in ``<out_dir>/failed.tsv``;
    :func:`read_openface_run` turns them into per-media errors.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    cmd = ["bash", str(RUN_SCRIPT), os.fspath(plan), os.fspath(out), binary or "", str(threads)]
    with log.open("w") as handle:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT
        )
    if proc.returncode == 3:
        raise OpenFaceNotFound(log.read_text().strip())
    if proc.returncode != 0:
        raise OpenFaceError(
            f"{RUN_SCRIPT.name} exited with code {proc.returncode}; see {log}:\n"
            + log.read_text().strip()[-2000:]
        )
    return log


def read_openface_run(
    plan: str | os.PathLike,
    out_dir: str | os.PathLike,
    groups: Sequence[str] = DEFAULT_GROUPS,
    *,
    log: str | os.PathLike | None = None,
) -> dict[str, OpenFaceFrames | MediaError]:
    """media file -> its frames, or a :class:`MediaError` naming it, for a finished run.

    ``out_dir`` is what :data:`RUN_SCRIPT` wrote for ``plan``; ``log`` is named in the errors
    (default ``<out_dir>/openface.log``). A run without its ``failed.tsv`` did not finish and
    raises :class:`OpenFaceError`.
    """
    groups = _check_groups(groups)
    out = Path(out_dir)
    log = Path(log) if log is not None else out / LOG_NAME
    inputs = read_plan(plan)
    failed_tsv = out / "failed.tsv"
    if not failed_tsv.is_file():
        raise OpenFaceError(f"{out}: no failed.tsv, so the OpenFace run did not finish; see {log}")
    failed = dict(line.split("\t", 1) for line in failed_tsv.read_text().splitlines()[1:] if line)
    results: dict[str, OpenFaceFrames | MediaError] = {}
    for name, media in inputs.items():
        if name in failed:
            results[media] = MediaError(f"{media}: {failed[name]}; see {log}")
            continue
        try:
            results[media] = read_openface_csv(out / f"{Path(name).stem}.csv", groups)
        except MediaError as exc:
            results[media] = MediaError(f"{media}: unusable OpenFace output: {exc}; see {log}")
    return results


# --------------------------------------------------------------------------------------------
# Clips


def slice_clips(
    frames: OpenFaceFrames, clips: Sequence[Clip], video: str
) -> dict[str, tuple[np.ndarray, np.ndarray] | MediaError]:
    """The frames of each clip: clip_id -> (features, timestamps from the clip start).

    A clip takes the frames with ``clip.start <= timestamp < clip.end`` (seconds in the media
    file); a clip whose media is its own file has start 0 and end its duration, so the same rule
    holds. Both arrays are float32. A clip with no frame in its interval maps to a
    :class:`MediaError` naming the clip, ``video`` and the interval.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray] | MediaError] = {}
    ts = frames.timestamps
    for clip in clips:
        inside = (ts >= clip.start) & (ts < clip.end)
        if not inside.any():
            covered = f"{ts.min():.3f}-{ts.max():.3f} s" if len(ts) else "nothing"
            out[clip.clip_id] = MediaError(
                f"no OpenFace frame of {video} in "
                f"[{clip.start:.3f}, {clip.end:.3f}) s (its frames cover {covered})"
            )
            continue
        out[clip.clip_id] = (
            frames.features[inside].astype(np.float32),
            (ts[inside] - clip.start).astype(np.float32),
        )
    return out


def extract_openface_clips(
    clips: Sequence[Clip],
    plan: str | os.PathLike,
    out_dir: str | os.PathLike,
    groups: Sequence[str] = DEFAULT_GROUPS,
    *,
    log: str | os.PathLike | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray] | MediaError]:
    """OpenFace features of ``clips``: clip_id -> (features, timestamps) or the clip's error.

    Reads the finished run in ``out_dir`` (see :func:`run_openface`) once per media file and
    slices it with :func:`slice_clips`; the columns are :func:`feature_names` of ``groups``. A
    media file OpenFace failed on, or one missing from ``plan``, makes each of its clips map to
    a :class:`MediaError` (the caller applies its bad-clip policy).
    """
    parsed = read_openface_run(plan, out_dir, groups, log=log)
    by_media: dict[str, list[Clip]] = {}
    for clip in clips:
        by_media.setdefault(clip.media, []).append(clip)
    results: dict[str, tuple[np.ndarray, np.ndarray] | MediaError] = {}
    for media, media_clips in by_media.items():
        frames = parsed.get(media) or MediaError(f"{media}: not in the OpenFace plan {plan}")
        if isinstance(frames, MediaError):
            for clip in media_clips:
                results[clip.clip_id] = frames
            continue
        results.update(slice_clips(frames, media_clips, media))
    return {clip.clip_id: results[clip.clip_id] for clip in clips}


def openface_extractor(
    clips: Sequence[Clip],
    groups: Sequence[str],
    work: str | os.PathLike,
    *,
    run: bool = True,
    plan: str | os.PathLike | None = None,
    binary: str | None = None,
    threads: int = 1,
    log: str | None = None,
) -> Extractor:
    """OpenFace features of the clips' media. With ``run`` OpenFace is run first, in ``work``;
    otherwise ``work`` is a finished run and ``plan`` its plan."""
    work = Path(work)
    if run:
        plan = work / "plan.tsv"
        work.mkdir(parents=True, exist_ok=True)
        write_plan(plan_inputs(c.media for c in clips), plan)
        run_openface(plan, work, binary=binary, threads=threads)
    results = extract_openface_clips(clips, plan, work, groups, log=log)

    def extract(clip: Clip):
        result = results[clip.clip_id]
        if isinstance(result, MediaError):
            raise result
        return result

    return Extractor(
        feature_names(groups),
        extract,
        "OpenFace FeatureExtraction",
        {"extractor": "openface", "groups": list(groups)},
    )
