"""``thne ablation``: every variant beside the paper's Table 4."""

from __future__ import annotations

import argparse

COMMAND = "ablation"
HELP = "variants beside the paper's Table 4 -> ablation.md"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants-json", required=True)
    parser.add_argument("--visual", required=True, help="visual.h5 the runs used")
    parser.add_argument("--audio", required=True, help="audio.h5 the runs used")
    parser.add_argument("--encoder", required=True, help="the text encoder the runs used")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--paper", default=None, help="the paper's rows of this dataset (default --dataset)"
    )


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
