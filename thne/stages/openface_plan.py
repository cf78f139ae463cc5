"""``thne openface-plan``: which media files each shard's OpenFace run processes."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

COMMAND = "openface-plan"
HELP = "one OpenFace input plan per shard -> a folder of TSVs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--shard-size", type=int, required=True)
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.data.manifest import read_manifest
    from thne.data.shards import all_shards
    from thne.features.openface import plan_inputs, write_plan

    clips = read_manifest(args.manifest)
    out = Path(args.out)
    # Written beside the target and renamed, so an interrupted run leaves no partial plan.
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shards = all_shards(clips, args.shard_size)
    for shard, members in enumerate(shards):
        write_plan(plan_inputs(c.media for c in members), tmp / f"{shard}.tsv")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"OpenFace plans for {len(shards)} shard(s) in {out}", file=sys.stderr)
