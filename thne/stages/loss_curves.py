"""``thne loss-curves``: Figure 3, every loss term per epoch, mean over seeds."""

from __future__ import annotations

import argparse
from pathlib import Path

COMMAND = "loss-curves"
HELP = "loss terms per epoch, mean over seeds (Figure 3) -> PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--histories",
        nargs="+",
        required=True,
        help="history.tsv files; each run's variant is the name of its run directory's parent",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--title", default="")


def run(args: argparse.Namespace) -> None:
    from thne.evaluate.figures import plot_loss_curves

    by_variant: dict[str, list[str]] = {}
    for path in args.histories:
        by_variant.setdefault(Path(path).parent.parent.name, []).append(path)
    plot_loss_curves(by_variant, args.out, title=args.title)
