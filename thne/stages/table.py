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
    from thne.evaluate.tables import describe_features, write_table

    features = describe_features(args.visual, args.audio, args.encoder)
    print(
        write_table(
            args.metrics,
            args.out,
            dataset=args.dataset,
            features=features,
            paper=args.paper,
            variants_json=args.variants_json,
        )
    )
