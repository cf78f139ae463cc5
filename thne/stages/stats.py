"""``thne stats``: standardisation statistics of a feature file, from the train split only."""

from __future__ import annotations

import argparse

COMMAND = "stats"
HELP = "standardisation statistics of a feature file, from the train split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--features", required=True)
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.features.streamed_fit import fit_stats

    fit_stats(args.manifest, args.features, args.out)
