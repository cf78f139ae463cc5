"""``thne grid-select``: the grid search's choice of hyper-parameters, on validation only.

The chosen point has the lowest mean validation MAE over the search seeds; points whose means
are equal when rounded to 6 decimals are ordered by the higher mean validation Corr (a Corr
that is missing or NaN on any seed counts as the worst), then by the earlier point in the
grid's order. Only the runs' ``valid_metrics.json`` files are opened: the test split is read
after the choice, by the tuned runs.
"""

from __future__ import annotations

import argparse
import json
import sys

COMMAND = "grid-select"
HELP = "the grid point with the best mean validation MAE -> best.json"


def _seeds(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers, got {value!r}") from None


def _axes(value: str) -> dict:
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--axes", type=_axes, required=True, help="JSON object axis: [values], in config order"
    )
    parser.add_argument("--seeds", type=_seeds, required=True, help="search seeds, e.g. 1,2")
    parser.add_argument("--grid-dir", required=True, help="the variant's grid folder")
    parser.add_argument(
        "--runs",
        nargs="+",
        required=True,
        help="<grid-dir>/<point>/seed<n>/valid_metrics.json of every point and seed",
    )
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--out", required=True)


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.grid import select

    result = select(
        args.runs,
        args.out,
        axes=args.axes,
        seeds=args.seeds,
        grid_dir=args.grid_dir,
        dataset=args.dataset,
        variant=args.variant,
    )
    mae = result["valid"]["mae"]
    print(
        f"{args.variant}: chose {result['name']} of {len(result['points'])} point(s), valid mae "
        f"{mae['mean']:.4f}±{mae['std']:.4f} over seed(s) {','.join(map(str, args.seeds))}",
        file=sys.stderr,
    )
