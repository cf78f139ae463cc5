"""Reading media files with PyAV: probing and audio decoding.

PyAV bundles its own FFmpeg libraries, so no ffmpeg binary is needed on the machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np

from thne.errors import InputError


class MediaError(InputError):
    """A media file is missing, unreadable, or lacks what a stage needs from it."""


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    has_video: bool
    has_audio: bool


def probe(path: str | os.PathLike) -> MediaInfo:
    """Open ``path``, decode its first video frame, and return its duration and streams.

    Decoding one frame is what tells a readable file from a truncated or corrupt one whose
    header still parses.
    """
    if not os.path.isfile(path):
        raise MediaError(f"{path}: file does not exist")
    try:
        with av.open(str(path)) as container:
            has_video = bool(container.streams.video)
            has_audio = bool(container.streams.audio)
            if not has_video and not has_audio:
                raise MediaError(f"{path}: no audio or video stream")
            if has_video:
                stream = container.streams.video[0]
                if next(container.decode(stream), None) is None:
                    raise MediaError(f"{path}: video stream holds no decodable frame")
            duration = _duration(container)
    except MediaError:
        raise
    except (av.error.FFmpegError, StopIteration, OSError) as exc:
        raise MediaError(f"{path}: cannot be decoded ({exc})") from exc
    if duration is None or duration <= 0:
        raise MediaError(f"{path}: duration is unknown or zero")
    return MediaInfo(duration=duration, has_video=has_video, has_audio=has_audio)


def _duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None:
        return container.duration / av.time_base
    for stream in list(container.streams.video) + list(container.streams.audio):
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
    return None


def decode_audio(
    path: str | os.PathLike, sample_rate: int, start: float = 0.0, end: float | None = None
) -> np.ndarray | None:
    """Mono float32 samples of ``path`` in [start, end) seconds at ``sample_rate``.

    Returns None when the file has no audio stream (the caller records that as a feature
    channel rather than failing). Raises :class:`MediaError` when the file cannot be decoded.
    """
    if not os.path.isfile(path):
        raise MediaError(f"{path}: file does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            if start > 0:
                # Seek lands on a packet at or before start; samples before start are cut below.
                offset = stream.start_time or 0
                container.seek(int(start / stream.time_base) + offset, stream=stream, backward=True)
            chunks: list[np.ndarray] = []
            first_time: float | None = None
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = (
                        float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                    )
                if end is not None and frame.pts is not None and frame.time > end:
                    break
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"{path}: audio cannot be decoded ({exc})") from exc
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    offset = start - (first_time or 0.0)
    lo = max(0, int(round(offset * sample_rate)))
    hi = None if end is None else max(lo, int(round((end - (first_time or 0.0)) * sample_rate)))
    return samples[lo:hi].astype(np.float32, copy=False)
