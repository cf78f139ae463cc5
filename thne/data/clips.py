"""What a dataset reader yields: candidate clips, clips it refused, and its error.

The readers of each layout (:mod:`thne.data.ingest` for MMSA, :mod:`thne.data.mosi`,
:mod:`thne.data.mosei`) and the shared checks in ingest all speak these types; they live here so
that no reader imports ingest and ingest imports the readers.
"""

from __future__ import annotations

from dataclasses import dataclass

from thne.errors import InputError

# What to do with a clip that cannot be used: stop the run, or leave it out and record why.
BAD_CLIP_POLICIES: tuple[str, ...] = ("fail", "exclude")


@dataclass(frozen=True)
class Clip:
    """One row of the manifest: a labelled interval of a media file."""

    clip_id: str
    video_id: str
    start: float
    end: float
    split: str
    label: float
    text: str
    media: str


@dataclass(frozen=True)
class Rejected:
    """A clip left out, and why."""

    clip: Clip
    reason: str


class IngestError(InputError):
    """The dataset's files cannot be turned into a manifest; the message says which and why."""


def clip_problem(clip: Clip, reason: str) -> str:
    """``clip <id> (<media>): <reason>``, naming the media once: most reasons already do."""
    where = "" if clip.media in reason else f" ({clip.media})"
    return f"clip {clip.clip_id}{where}: {reason}"
