"""``thne cases``: Table 5, the test clips with the smallest and largest errors."""

from __future__ import annotations

import argparse

COMMAND = "cases"
HELP = "test clips with the smallest and largest errors (Table 5) -> cases.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", nargs="+", required=True, help="predictions.tsv per seed")
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("-n", type=int, default=5, help="clips per list")


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.cases import write_cases

    write_cases(args.predictions, args.manifest, args.out, dataset=args.dataset, n=args.n)
