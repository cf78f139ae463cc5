"""``thne table``: our t-HNE beside the paper's Table 3."""

from __future__ import annotations

import argparse

COMMAND = "table"
HELP = "t-HNE beside the paper's Table 3 -> table.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", required=True)
    parser.add_argument(
        "--variants-json", help="variants.json: MMIM's row and each variant's difference"
    )
    parser.add_argument("--visual", required=True, help="visual.h5 the runs used")
    parser.add_argument("--audio", required=True, help="audio.h5 the runs used")
    parser.add_argument("--encoder", required=True, help="the text encoder the runs used")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--paper", default=None, help="the paper's rows of this dataset (default --dataset)"
    )


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
