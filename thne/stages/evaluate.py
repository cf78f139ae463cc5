"""``thne evaluate``: the test metrics of one run, from its predictions."""

from __future__ import annotations

import argparse
import sys

COMMAND = "evaluate"
HELP = "test metrics of one run from its predictions.tsv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", default="thne")
    parser.add_argument("--seed", type=int, default=None)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import evaluate_predictions
    from thne.evaluate.metrics import METRIC_KEYS

    m = evaluate_predictions(args.predictions, args.out, variant=args.variant, seed=args.seed)
    print(" ".join(f"{k} {m[k]:.4f}" for k in METRIC_KEYS), file=sys.stderr)
    if "warning" in m:
        print(f"warning: {args.predictions}: {m['warning']}", file=sys.stderr)
