"""A webcam recording made scorable: browsers' recorders (MediaRecorder) write a WebM whose
header declares no duration, since they stream it out before it ends, and a clip of unknown
length is refused by ``thne predict`` (:func:`thne.media.probe`). The recording's packets are
copied, not re-encoded, into a Matroska file, whose muxer writes the duration when it closes:
the same pictures and sound, with a length.
"""

from __future__ import annotations

from pathlib import Path

import av

from thne.media import MediaError


def with_duration(recording: str | Path, folder: Path) -> Path:
    """``recording`` when its container declares a duration, else a copy of its audio and
    video packets in ``folder/<stem>.mkv``, which does."""
    source = Path(recording)
    try:
        with av.open(str(source)) as container:
            if container.duration:
                return source
            out_path = folder / f"{source.stem}.mkv"
            with av.open(str(out_path), "w", format="matroska") as out:
                streams = {
                    s.index: out.add_stream_from_template(s)
                    for s in (*container.streams.video[:1], *container.streams.audio[:1])
                }
                for packet in container.demux(list(container.streams)):
                    # The demuxer's flushing packets carry no data or timestamps.
                    if packet.dts is None or packet.stream.index not in streams:
                        continue
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    except av.error.FFmpegError as exc:
        raise MediaError(f"{source}: the recording cannot be read ({exc})") from exc
    return out_path
