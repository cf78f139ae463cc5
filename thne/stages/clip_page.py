"""``thne clip-page``: the report's page of every test clip with each variant's prediction."""

from __future__ import annotations

import argparse
import sys

COMMAND = "clip-page"
HELP = "every test clip with its transcript, label and each variant's prediction -> HTML page"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--predictions",
        nargs="+",
        required=True,
        help="every run's results/<ds>/runs/<variant>/seed<n>/predictions.tsv",
    )
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.clip_page import write_clip_page

    table = write_clip_page(args.predictions, args.manifest, args.out, dataset=args.dataset)
    print(f"{len(table)} test clips, from {table['video'].nunique()} videos", file=sys.stderr)
