"""``thne grid-report``: what the grid search chose and what it did on the test split.

Writes ``grid.md`` (every point ranked on validation, the chosen values beside the untuned
ones and the paper's Table 2, and tuned against untuned test metrics with a paired
bootstrap), a figure of validation MAE against each hyper-parameter, and the HTML page of
``grid.md`` for the report.
"""

from __future__ import annotations

import argparse
import json
import sys

from thne.stages._args import add_bootstrap_flags, bootstrap_options, csv

COMMAND = "grid-report"
HELP = "grid search choice, tuned vs untuned test metrics -> grid.md, figure, HTML page"


def _json_object(value: str) -> dict:
    try:
        result = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(result, dict):
        raise argparse.ArgumentTypeError(f"give a JSON object, got {value!r}")
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--paper", default=None, help="the paper's rows of this dataset (default --dataset)"
    )
    parser.add_argument("--variants", type=csv, required=True, help="comma-separated, in order")
    parser.add_argument("--best", nargs="+", required=True, help="each variant's best.json")
    parser.add_argument("--tuned-variants", required=True, help="the tuned runs' variants.json")
    parser.add_argument(
        "--tuned-predictions",
        nargs="+",
        required=True,
        help="<variant>/seed<n>/predictions.tsv of every tuned run",
    )
    parser.add_argument("--untuned-runs", nargs="+", required=True, help="metrics.json files")
    parser.add_argument(
        "--untuned-predictions", nargs="+", required=True, help="predictions.tsv beside each"
    )
    parser.add_argument(
        "--untuned-values",
        type=_json_object,
        required=True,
        help="JSON {variant: {axis: value the untuned runs trained with}}",
    )
    add_bootstrap_flags(parser)
    parser.add_argument("--out", required=True, help="grid.md")
    parser.add_argument("--figure", required=True, help="PNG")
    parser.add_argument("--forest", required=True, help="PNG: tuned − untuned, per metric")
    parser.add_argument("--page", required=True, help="HTML page of grid.md")


def run(args: argparse.Namespace) -> None:
    from thne.evaluate import html
    from thne.evaluate.grid_figure import plot_grid
    from thne.evaluate.grid_report import VARIANT_LABELS, write_grid_report
    from thne.evaluate.report_figures import plot_forest

    _, best, comparisons = write_grid_report(
        args.out,
        dataset=args.dataset,
        paper=args.paper or args.dataset,
        variants=args.variants,
        best=args.best,
        tuned_variants=args.tuned_variants,
        tuned_predictions=args.tuned_predictions,
        untuned_runs=args.untuned_runs,
        untuned_predictions=args.untuned_predictions,
        untuned_values=args.untuned_values,
        **bootstrap_options(args),
    )
    plot_grid(best, args.figure, title=f"Grid search on {args.dataset}: validation MAE")
    first = next(iter(comparisons.values()))
    plot_forest(
        {
            VARIANT_LABELS.get(v, v): {"vs_thne": c["variants"]["tuned"]}
            for v, c in comparisons.items()
        },
        args.forest,
        first,
        heading="Tuned − untuned runs on the test split",
        side="tuned",
    )
    html.write_page(args.page, html.markdown_page(args.out))
    for variant, b in best.items():
        print(f"{variant}: chose {b['name']}", file=sys.stderr)
