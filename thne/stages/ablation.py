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
    from thne.evaluate.tables import describe_features, write_ablation

    features = describe_features(args.visual, args.audio, args.encoder)
    print(
        write_ablation(
            args.variants_json,
            args.out,
            dataset=args.dataset,
            features=features,
            paper=args.paper,
        )
    )
