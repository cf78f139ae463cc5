"""``thne unpack``: a zip or tar archive into a folder, safely and restartably."""

from __future__ import annotations

import argparse

COMMAND = "unpack"
HELP = "unpack a zip or tar archive safely and restartably"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True)
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.data.unpack import unpack

    unpack(args.archive, args.out)
