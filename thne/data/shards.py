"""Shards: groups of whole videos, so per-video stages run as hundreds of jobs, not thousands.

A shard is a run of ``shard_size`` consecutive video ids in sorted order. All clips of a video
fall in the same shard, so OpenFace processes a full video once for all its clips.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from thne.data.clips import Clip
from thne.data.manifest import read_manifest


def video_ids(clips: Sequence[Clip]) -> list[str]:
    return sorted({c.video_id for c in clips})


def n_shards(clips: Sequence[Clip], shard_size: int) -> int:
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    return max(1, math.ceil(len(video_ids(clips)) / shard_size))


def shard_clips(clips: Sequence[Clip], shard: int, shard_size: int) -> list[Clip]:
    """The clips of shard ``shard`` (0-based), in manifest order."""
    total = n_shards(clips, shard_size)
    if not 0 <= shard < total:
        raise ValueError(f"shard {shard} does not exist: there are {total} (0 to {total - 1})")
    videos = set(video_ids(clips)[shard * shard_size : (shard + 1) * shard_size])
    return [c for c in clips if c.video_id in videos]


def all_shards(clips: Sequence[Clip], shard_size: int) -> list[list[Clip]]:
    """Every shard's clips (as :func:`shard_clips` gives each), in one pass over ``clips``."""
    total = n_shards(clips, shard_size)
    index = {video: i // shard_size for i, video in enumerate(video_ids(clips))}
    shards: list[list[Clip]] = [[] for _ in range(total)]
    for clip in clips:
        shards[index[clip.video_id]].append(clip)
    return shards


def read_shard(manifest: str | os.PathLike, shard: int | None, shard_size: int) -> list[Clip]:
    """The clips of ``manifest``, or only those of shard ``shard`` when it is given."""
    clips = read_manifest(manifest)
    return clips if shard is None else shard_clips(clips, shard, shard_size)
