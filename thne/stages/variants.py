"""``thne variants``: every variant's test metrics, mean and std over seeds."""

from __future__ import annotations

import argparse
import sys

from thne.stages._args import add_bootstrap_flags, bootstrap_options, csv

COMMAND = "variants"
HELP = "every variant's mean and std over seeds -> variants.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", nargs="+", required=True, help="per-run metrics.json files")
    parser.add_argument("--variants", type=csv, required=True, help="comma-separated, in order")
    parser.add_argument(
        "--predictions",
        nargs="*",
        default=[],
        help="the runs' predictions.tsv: adds each variant's paired bootstrap against thne",
    )
    add_bootstrap_flags(parser)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.aggregate import aggregate_variants

    r = aggregate_variants(
        args.runs,
        args.out,
        dataset=args.dataset,
        variants=args.variants,
        predictions=args.predictions,
        **bootstrap_options(args),
    )
    for name, summary in r["variants"].items():
        m, sd = summary["mean"]["mae"], summary["std"]["mae"]
        line = f"{name}: mae {m:.4f}±{sd:.4f} over {len(summary['seeds'])} seed(s)"
        if "vs_thne" in summary:
            d = summary["vs_thne"]["mae"]
            lo, hi = d["interval"]
            line += f"; vs thne {d['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        print(line, file=sys.stderr)
