"""``thne unpack``: a zip or tar archive into a folder, safely and restartably."""

from __future__ import annotations

import argparse

COMMAND = "unpack"
HELP = "unpack a zip or tar archive safely and restartably"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--move-corrupt-aside",
        action="store_true",
        help="rename a corrupt archive to <name>.corrupt (for downloads: the next run fetches "
        "it again)",
    )


def run(args: argparse.Namespace) -> None:
    from thne.data.unpack import unpack

    unpack(args.archive, args.out, move_corrupt_aside=args.move_corrupt_aside)
