"""Feature extraction in shards of videos: which clips a shard holds, the files a merge reads,
and the fingerprint of a shard's clips and media that its rule takes as a param.

The shard rules read the manifest as ancient(), with that fingerprint as a param, so a new
manifest reruns only the shards whose clips or media changed, and a media file changed in
place reruns the shards that hold it.
"""

from __future__ import annotations

import functools
import os
import shlex
from collections.abc import Mapping

from thne.workflow.sources import clips_fingerprint


@functools.cache
def _shards(path: str, mtime_ns: int, shard_size: int) -> list:
    """Every shard's clips, split once per parse: a MOSEI plan asks for 600 shards' clips."""
    from thne.data.manifest import read_manifest
    from thne.data.shards import all_shards

    return all_shards(read_manifest(path), shard_size)


def shard_clips(manifest: str, shard_size: int, shard: int) -> list:
    from thne.data.shards import pick_shard

    return pick_shard(_shards(manifest, os.stat(manifest).st_mtime_ns, shard_size), shard)


def shard_media(config: Mapping, manifest: str, wildcards: Mapping) -> str:
    """The fingerprint of the job's shard's clips (of ``manifest``) and of their media."""
    size = config["datasets"][wildcards["ds"]]["shard_size"]
    return clips_fingerprint(shard_clips(manifest, size, int(wildcards["shard"])))


def shard_files(config: Mapping, pattern: str, manifest: str, wildcards: Mapping) -> list[str]:
    """One feature file per shard (``pattern`` with {shard} and the job's wildcards); how many
    follows from the manifest."""
    size = config["datasets"][wildcards["ds"]]["shard_size"]
    n = len(_shards(manifest, os.stat(manifest).st_mtime_ns, size))
    return [pattern.format(shard=i, **wildcards) for i in range(n)]


def visual_inputs(config: Mapping, ds: str, shard: str) -> dict:
    """The manifest, and for OpenFace the shard's plan and finished run. The manifest and plan
    are ancient(): the shard's own clips and media decide (shard_media)."""
    from snakemake.io import ancient

    inputs = {"manifest": ancient(f"data/{ds}/manifest.tsv")}
    if config["datasets"][ds]["visual"]["extractor"] == "openface":
        inputs["plan"] = ancient(f"features/{ds}/openface/plan")
        inputs["run"] = f"features/{ds}/openface/run/{shard}"
    return inputs


def openface_flags(config: Mapping, ds: str, shard: str, inputs: Mapping) -> str:
    """The OpenFace flags of ``thne visual`` for a shard of a dataset (none for landmarks)."""
    visual = config["datasets"][ds]["visual"]
    if visual["extractor"] != "openface":
        return ""
    plan = f"{inputs['plan']}/{shard}.tsv"
    return (
        f"--openface-groups {','.join(visual['openface_groups'])}"
        f" --openface-run {shlex.quote(inputs['run'])}"
        f" --openface-plan {shlex.quote(plan)}"
        f" --openface-log logs/{ds}/openface/shard{shard}.log"
    )


def predict_openface_flags(config: Mapping, ds: str, name: str, shard: str) -> str:
    """As openface_flags, for a shard of a predict: entry (thne visual runs OpenFace)."""
    groups = ",".join(config["datasets"][ds]["visual"]["openface_groups"])
    return (
        f"--openface-groups {groups} --openface-dir features/{ds}/predict/{name}/openface/{shard}"
    )
