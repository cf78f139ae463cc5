"""``thne evaluate``: the test metrics of one run, from its predictions."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

COMMAND = "evaluate"
HELP = "test metrics of one run from its predictions.tsv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--predictions", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variant", default="thne")
    parser.add_argument("--seed", type=int, default=None)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import evaluate_predictions

    m = evaluate_predictions(args.predictions, args.out, variant=args.variant, seed=args.seed)
    print(" ".join(f"{k} {v:.4f}" for k, v in m.items()), file=sys.stderr)
    warning = json.loads(Path(args.out).read_text()).get("warning")
    if warning:
        print(f"warning: {args.predictions}: {warning}", file=sys.stderr)
