"""The ``thne`` command: one subcommand per workflow stage.

Each Snakemake rule calls one of these with its inputs, outputs and config values as flags;
nothing here reads the config file. Each subcommand is a module of :mod:`thne.stages` (its
flags and what it runs); this module only lists them and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

# The stage modules under thne/stages, in workflow order: the order of ``thne --help``.
STAGE_MODULES: tuple[str, ...] = (
    "download",
    "unpack",
    "ingest",
    "audio",
    "visual",
    "openface_plan",
    "merge",
    "stats",
    "text",
    "train",
    "evaluate",
    "aggregate",
    "variants",
    "table",
    "ablation",
    "loss_curves",
    "cases",
    "report_pages",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thne", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name in STAGE_MODULES:
        stage = importlib.import_module(f"thne.stages.{name}")
        p = sub.add_parser(stage.COMMAND, help=stage.HELP, description=stage.HELP)
        stage.add_arguments(p)
        p.set_defaults(func=stage.run)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
