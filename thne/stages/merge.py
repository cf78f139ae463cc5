"""``thne merge``: the shards' feature files joined into the dataset's one."""

from __future__ import annotations

import argparse
import sys

COMMAND = "merge"
HELP = "join shard feature files -> one feature file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.features.store import merge_h5

    n = merge_h5(args.inputs, args.out)
    print(f"merged {len(args.inputs)} shard(s): {n} clips", file=sys.stderr)
