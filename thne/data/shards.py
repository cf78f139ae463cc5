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


def all_shards(clips: Sequence[Clip], shard_size: int) -> list[list[Clip]]:
    """Every shard's clips, each in manifest order, in one pass over ``clips``: callers that
    need many shards (the workflow's plan, the OpenFace plans) split the manifest once."""
    total = n_shards(clips, shard_size)
    index = {video: i // shard_size for i, video in enumerate(video_ids(clips))}
    shards: list[list[Clip]] = [[] for _ in range(total)]
    for clip in clips:
        shards[index[clip.video_id]].append(clip)
    return shards


def pick_shard(shards: Sequence[list[Clip]], shard: int) -> list[Clip]:
    """Shard ``shard`` (0-based) of :func:`all_shards`; one that does not exist is an error."""
    if not 0 <= shard < len(shards):
        raise ValueError(
            f"shard {shard} does not exist: there are {len(shards)} (0 to {len(shards) - 1})"
        )
    return shards[shard]


def shard_clips(clips: Sequence[Clip], shard: int, shard_size: int) -> list[Clip]:
    """The clips of shard ``shard`` (0-based), in manifest order."""
    return pick_shard(all_shards(clips, shard_size), shard)


def read_shard(manifest: str | os.PathLike, shard: int | None, shard_size: int) -> list[Clip]:
    """The clips of ``manifest``, or only those of shard ``shard`` when it is given."""
    clips = read_manifest(manifest)
    return clips if shard is None else shard_clips(clips, shard, shard_size)
