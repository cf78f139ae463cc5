"""Visual features from OpenFace 2.x ``FeatureExtraction``: running it, reading its CSVs, slicing.

OpenFace processes whole media files and writes one CSV per file (``<out_dir>/<stem>.csv``,
714 columns, one row per video frame). This module

* runs it once for a whole list of videos (:func:`run_openface`), because its start-up costs
  1-2 s and one call accepts many ``-f`` inputs;
* reads a CSV into named feature groups (:func:`read_openface_csv`), zeroing the frames where
  tracking failed;
* cuts the per-video frames into clips (:func:`slice_clips`), so a long video holding many
  clips is processed once;
* ties the three together for a list of manifest clips (:func:`extract_openface_clips`).

OpenFace's habits this module guards against:

* It exits 0 even when it cannot open an input; it then writes no CSV. Every expected CSV is
  therefore checked to exist and to parse after each call.
* It stops at the first ``-f`` input it cannot open and skips every later one. Inputs that do
  not exist are kept out of the call, and when an existing input still fails, the inputs after
  it are run again in a further call (see :func:`run_openface`).
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
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from thne.data.manifest import Clip
from thne.features.media import MediaError

__all__ = [
    "CONTAINER_BINARY",
    "DEFAULT_GROUPS",
    "GROUPS",
    "LOG_NAME",
    "OPENFACE_FLAGS",
    "MediaError",
    "OpenFaceError",
    "OpenFaceFrames",
    "OpenFaceNotFound",
    "extract_openface_clips",
    "feature_names",
    "find_openface",
    "read_openface_csv",
    "run_openface",
    "slice_clips",
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

# Every group above needs one of these flags; -q keeps OpenFace from opening a window.
OPENFACE_FLAGS: tuple[str, ...] = ("-aus", "-pose", "-gaze", "-2Dfp", "-3Dfp", "-pdmparams", "-q")

# Where the binary lives inside docker://algebr/openface:latest, the image Snakemake uses when
# run with --sdm apptainer.
CONTAINER_BINARY = "/home/openface-build/build/bin/FeatureExtraction"

LOG_NAME = "openface.log"

# Columns read besides the feature groups.
_TIMESTAMP = "timestamp"
_SUCCESS = "success"

# Environment variables that cap the thread pools OpenFace's libraries start (OpenBLAS, OpenMP,
# MKL, OpenCV); FeatureExtraction itself has no thread option.
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)


class OpenFaceError(RuntimeError):
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
# Finding and running OpenFace


def find_openface(configured: str | None = None) -> str:
    """The OpenFace ``FeatureExtraction`` binary to use.

    Tried in order: ``configured`` (a path, or a name looked up on PATH; it must exist and be
    executable), ``FeatureExtraction`` on PATH, then :data:`CONTAINER_BINARY`. Raises
    :class:`OpenFaceNotFound` listing what was tried and how to provide OpenFace.
    """
    tried: list[str] = []
    if configured:
        found = shutil.which(configured)
        if found:
            return found
        tried.append(f"visual.openface_bin = {configured!r}: {_why_unusable(configured)}")
    found = shutil.which("FeatureExtraction")
    if found:
        return found
    tried.append("FeatureExtraction on PATH: not found")
    if os.path.isfile(CONTAINER_BINARY) and os.access(CONTAINER_BINARY, os.X_OK):
        return CONTAINER_BINARY
    tried.append(
        f"{CONTAINER_BINARY} (its place in docker://algebr/openface:latest): "
        + _why_unusable(CONTAINER_BINARY)
    )
    listing = "\n".join(f"  {i}. {line}" for i, line in enumerate(tried, start=1))
    raise OpenFaceNotFound(
        "OpenFace FeatureExtraction not found. Tried, in order:\n"
        f"{listing}\n"
        "Provide it in one of these ways: set datasets.<ds>.visual.openface_bin to the path of "
        "FeatureExtraction; put FeatureExtraction on PATH (build OpenFace 2.x from "
        "https://github.com/TadasBaltrusaitis/OpenFace); or run Snakemake with --sdm apptainer "
        "so the rule runs inside docker://algebr/openface:latest."
    )


def _why_unusable(binary: str) -> str:
    if os.sep not in binary and not (os.altsep and os.altsep in binary):
        return "not found on PATH"
    if not os.path.exists(binary):
        return "does not exist"
    if os.path.isdir(binary):
        return "is a directory"
    return "is not executable"


def run_openface(
    binary: str | os.PathLike,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    threads: int = 1,
    extra_args: Sequence[str] = (),
) -> dict[Path, Path]:
    """Run OpenFace once for all ``videos``; return each video's CSV, ``<out_dir>/<stem>.csv``.

    The command is ``<binary> -f v1 -f v2 ... -out_dir <out_dir> -aus -pose -gaze -2Dfp -3Dfp
    -pdmparams -q [extra_args]``; its output goes to ``<out_dir>/openface.log``, which is kept.
    ``threads`` caps the BLAS/OpenMP/OpenCV thread pools through their environment variables.

    Raises :class:`ValueError` when two different videos share a stem (their CSVs would
    collide), :class:`OpenFaceNotFound` when ``binary`` is not executable,
    :class:`OpenFaceError` when OpenFace exits non-zero, and :class:`MediaError` naming every
    video whose CSV is missing or does not parse, and the log.
    """
    results = _run_and_read(binary, videos, out_dir, tuple(GROUPS), threads, extra_args)
    failures = [err for err in results.values() if isinstance(err, MediaError)]
    if failures:
        if len(failures) == 1:
            raise failures[0]
        raise MediaError(
            f"OpenFace failed for {len(failures)} of {len(results)} videos:\n"
            + "\n".join(f"  {err}" for err in failures)
        )
    return {video: _csv_path(out_dir, video) for video in results}


def _run_and_read(
    binary: str | os.PathLike,
    videos: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    groups: Sequence[str],
    threads: int,
    extra_args: Sequence[str],
) -> dict[Path, OpenFaceFrames | MediaError]:
    """Run OpenFace on ``videos`` and read each CSV; a video that failed maps to its error."""
    groups = _check_groups(groups)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    unique = _unique_videos(videos)
    if not unique:
        return {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / LOG_NAME
    resolved = shutil.which(os.fspath(binary))
    if resolved is None:
        raise OpenFaceNotFound(
            f"OpenFace binary {os.fspath(binary)!r} {_why_unusable(os.fspath(binary))}; "
            "find_openface() lists the ways to provide it"
        )

    results: dict[Path, OpenFaceFrames | MediaError] = {}
    pending: list[Path] = []
    for video in unique:
        # A CSV left by an earlier run must not pass for this run's output.
        _csv_path(out, video).unlink(missing_ok=True)
        if video.is_file():
            pending.append(video)
        else:
            # OpenFace stops at the first input it cannot open, so a missing file passed to it
            # would also cost every video after it.
            results[video] = MediaError(f"{video}: video file does not exist (OpenFace not run)")

    log.write_text("")
    env = {**os.environ, **dict.fromkeys(_THREAD_ENV, str(threads))}
    never_written: list[Path] = []
    while pending:
        cmd = [resolved]
        for video in pending:
            cmd += ["-f", os.fspath(video)]
        cmd += ["-out_dir", os.fspath(out), *OPENFACE_FLAGS, *extra_args]
        with log.open("a") as handle:
            handle.write(f"$ {shlex.join(cmd)}\n")
            handle.flush()
            try:
                proc = subprocess.run(
                    cmd, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, env=env
                )
            except OSError as exc:
                raise OpenFaceError(f"cannot run OpenFace binary {resolved} ({exc})") from exc
        if proc.returncode != 0:
            # A crash may leave a CSV cut at a row boundary that looks complete: trust none.
            raise OpenFaceError(
                f"OpenFace ({resolved}) exited with code {proc.returncode} while processing "
                f"{len(pending)} video(s); see {log}"
            )
        unwritten = [v for v in pending if not _csv_path(out, v).is_file()]
        if not unwritten:
            break
        # OpenFace gives up at the first input it cannot open and never tries those after it:
        # count that one as failed and run the unprocessed rest again. Each round drops at least
        # one video, so this ends.
        first = unwritten[0]
        never_written.append(first)
        rest = pending[pending.index(first) + 1 :]
        pending = [v for v in rest if not _csv_path(out, v).is_file()]

    for video in unique:
        if video in results:
            continue
        csv = _csv_path(out, video)
        if video in never_written:
            results[video] = MediaError(
                f"{video}: OpenFace wrote no {csv} (it exits 0 even when it cannot open or "
                f"decode a video); see {log}"
            )
            continue
        try:
            results[video] = read_openface_csv(csv, groups)
        except MediaError as exc:
            results[video] = MediaError(f"{video}: unusable OpenFace output: {exc}; see {log}")
    return {video: results[video] for video in unique}


def _unique_videos(videos: Sequence[str | os.PathLike]) -> list[Path]:
    """``videos`` as Paths without repeats; ValueError when different files share a stem."""
    if isinstance(videos, (str, os.PathLike)):
        raise TypeError("videos must be a sequence of paths, not a single path")
    unique: list[Path] = []
    seen: set[str] = set()
    by_stem: dict[str, list[Path]] = {}
    for video in map(Path, videos):
        key = os.path.abspath(video)
        if key in seen:
            continue
        seen.add(key)
        unique.append(video)
        by_stem.setdefault(video.stem, []).append(video)
    clashes = {stem: paths for stem, paths in by_stem.items() if len(paths) > 1}
    if clashes:
        shown = "; ".join(
            f"{stem}: {', '.join(map(str, paths))}" for stem, paths in clashes.items()
        )
        raise ValueError(
            "OpenFace names each CSV after its video's stem, so videos in one call need distinct "
            f"stems; these collide: {shown}"
        )
    return unique


def _csv_path(out_dir: str | os.PathLike, video: Path) -> Path:
    return Path(out_dir) / f"{video.stem}.csv"


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
                f"clip {clip.clip_id}: no OpenFace frame of {video} in "
                f"[{clip.start:.3f}, {clip.end:.3f}) s (its frames cover {covered})"
            )
            continue
        out[clip.clip_id] = (
            frames.features[inside].astype(np.float32),
            (ts[inside] - clip.start).astype(np.float32),
        )
    return out


def extract_openface_clips(
    binary: str | os.PathLike,
    clips: Sequence[Clip],
    out_dir: str | os.PathLike,
    groups: Sequence[str] = DEFAULT_GROUPS,
    *,
    threads: int = 1,
    extra_args: Sequence[str] = (),
) -> dict[str, tuple[np.ndarray, np.ndarray] | MediaError]:
    """OpenFace features of ``clips``: clip_id -> (features, timestamps) or the clip's error.

    Runs OpenFace once for all distinct media files of ``clips`` (see :func:`run_openface`),
    reads each CSV once and slices it with :func:`slice_clips`; the feature columns are
    :func:`feature_names` of ``groups``. A video OpenFace failed on makes each of its clips map
    to a :class:`MediaError` (the caller applies its bad-clip policy); OpenFace failing as a
    whole raises :class:`OpenFaceError`.

    Media files with the same stem in different folders raise :class:`ValueError` rather than
    being renamed behind the caller's back: the CSVs in ``out_dir`` keep the media names, which
    keeps them easy to find; callers give such files distinct names.
    """
    by_media: dict[str, list[Clip]] = {}
    for clip in clips:
        by_media.setdefault(clip.media, []).append(clip)
    parsed = _run_and_read(
        binary, [Path(m) for m in by_media], out_dir, groups, threads, extra_args
    )
    # `_run_and_read` drops repeats of one file spelled two ways; map each spelling to its result.
    by_abspath = {os.path.abspath(video): result for video, result in parsed.items()}
    results: dict[str, tuple[np.ndarray, np.ndarray] | MediaError] = {}
    for media, media_clips in by_media.items():
        frames = by_abspath[os.path.abspath(media)]
        if isinstance(frames, MediaError):
            for clip in media_clips:
                results[clip.clip_id] = MediaError(f"clip {clip.clip_id}: {frames}")
            continue
        results.update(slice_clips(frames, media_clips, media))
    return {clip.clip_id: results[clip.clip_id] for clip in clips}
