"""Reading media files with PyAV: probing, audio decoding and grey video frames.

PyAV bundles its own FFmpeg libraries, so no ffmpeg binary is needed on the machine.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from thne.errors import InputError


class MediaError(InputError):
    """A media file is missing, unreadable, or lacks what a stage needs from it."""


# How far a stream may end before the clip does and still count as covering it. A sound
# track often ends a few tens of ms before the picture (a real MOSI segment: 59 ms); a cut
# file misses seconds.
STREAM_END_SLACK_S = 0.1
# Only the last seconds are demuxed to find where the streams end, so a long video is not
# read through.
_TAIL_S = 5.0


@dataclass(frozen=True)
class MediaInfo:
    """``duration`` is what the container declares; ``covered`` is where the data really ends:
    the earliest end of its streams' last packets. A file cut short after an index that
    declares the full length ("faststart" mp4) has ``covered`` < ``duration``."""

    duration: float
    has_video: bool
    has_audio: bool
    covered: float = float("inf")
    short_stream: str = ""


def probe(path: str | os.PathLike) -> MediaInfo:
    """Open ``path``, decode its first video frame, and find its duration, its streams, and
    where its streams' data ends.

    Decoding one frame is what tells a readable file from a corrupt one whose header still
    parses; the streams' last packets tell a file cut short from a whole one.
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
            if duration is not None and duration > 0:
                covered, short_stream = _streams_end(container, duration)
    except MediaError:
        raise
    except (av.error.FFmpegError, StopIteration, OSError) as exc:
        raise MediaError(f"{path}: cannot be decoded ({exc})") from exc
    if duration is None or duration <= 0:
        raise MediaError(f"{path}: duration is unknown or zero")
    return MediaInfo(
        duration=duration,
        has_video=has_video,
        has_audio=has_audio,
        covered=covered,
        short_stream=short_stream,
    )


def _streams_end(container: av.container.InputContainer, duration: float) -> tuple[float, str]:
    """Where the first video and audio streams' data ends (the earlier of the two), and which
    stream that is; demuxes only the last few seconds when the file allows it."""
    streams = [*container.streams.video[:1], *container.streams.audio[:1]]
    ends = _packet_ends(container, streams, max(0.0, duration - _TAIL_S))
    if any(end is None for end in ends.values()):
        # The seek landed past the data (a cut file's index points beyond its end) or in a
        # stream's gap: read the file from the start.
        ends = _packet_ends(container, streams, 0.0)
    kind, end = min(((s.type, ends[s.index] or 0.0) for s in streams), key=lambda x: x[1])
    return end, kind


def _packet_ends(
    container: av.container.InputContainer, streams: list, start: float
) -> dict[int, float | None]:
    ends: dict[int, float | None] = {s.index: None for s in streams}
    container.seek(int(start * av.time_base), backward=True, any_frame=False)
    for packet in container.demux(streams):
        if packet.pts is None or packet.time_base is None:
            continue
        end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
        index = packet.stream.index
        ends[index] = end if ends[index] is None else max(ends[index], end)
    return ends


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


def gray_frames(
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
