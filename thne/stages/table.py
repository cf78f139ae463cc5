"""``thne table``: our t-HNE beside the paper's Table 3."""

from __future__ import annotations

import argparse

from thne.stages._args import add_table_flags

COMMAND = "table"
HELP = "t-HNE beside the paper's Table 3 -> table.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", required=True)
    parser.add_argument(
        "--variants-json", help="variants.json: MMIM's row and each variant's difference"
    )
    add_table_flags(parser)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.tables import table_context, write_table

    context = table_context(args)
    print(write_table(args.metrics, args.out, variants_json=args.variants_json, **context))
