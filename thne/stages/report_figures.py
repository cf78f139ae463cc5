"""``thne report-figures``: the report's figures of differences, predictions, seeds and epochs."""

from __future__ import annotations

import argparse

COMMAND = "report-figures"
HELP = (
    "differences from t-HNE, predictions against labels, 7-class confusion, per-seed MAE and "
    "the epoch each seed kept -> PNGs"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--variants-json", required=True, help="variants.json of `thne variants`")
    parser.add_argument(
        "--predictions",
        nargs="+",
        required=True,
        help="predictions.tsv of every run; each run's variant is its run folder's parent",
    )
    parser.add_argument("--histories", nargs="+", required=True, help="t-HNE's history.tsv files")
    parser.add_argument(
        "--valid-metrics", nargs="+", required=True, help="t-HNE's valid_metrics.json files"
    )
    parser.add_argument("--manifest", required=True, help="the dataset's manifest.tsv")
    parser.add_argument("--out-forest", required=True, help="forest plot of differences")
    parser.add_argument("--out-predicted", required=True, help="prediction against label")
    parser.add_argument("--out-confusion", required=True, help="t-HNE's 7-class confusion")
    parser.add_argument("--out-seeds", required=True, help="test MAE of each seed")
    parser.add_argument("--out-epochs", required=True, help="validation MAE per epoch")


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.report_figures import FIGURES, write_report_figures

    write_report_figures(
        args.variants_json,
        args.predictions,
        args.histories,
        args.valid_metrics,
        args.manifest,
        {name: getattr(args, f"out_{name}") for name in FIGURES},
    )
