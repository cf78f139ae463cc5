"""``thne ablation``: every variant beside the paper's Table 4."""

from __future__ import annotations

import argparse

from thne.stages._args import add_table_flags

COMMAND = "ablation"
HELP = "variants beside the paper's Table 4 -> ablation.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants-json", required=True)
    add_table_flags(parser)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.tables import table_context, write_ablation

    print(write_ablation(args.variants_json, args.out, **table_context(args)))
