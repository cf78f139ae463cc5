"""The ``thne`` command: one subcommand per workflow stage.

Each Snakemake rule calls one of these with its inputs, outputs and config values as flags;
nothing here reads the config file. Each subcommand is a module of :mod:`thne.stages` (its
flags and what it runs); this module only lists them and dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections.abc import Sequence

from thne.errors import InputError
from thne.io import DiskFull, is_disk_full, remove_stale

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
    "grid_select",
    "grid_report",
    "table",
    "ablation",
    "loss_curves",
    "report_figures",
    "cases",
    "clip_page",
    "report_pages",
    "import_features",
    "predict_clips",
    "predict",
)
# Commands no rule runs, listed after the stages: tools over a finished build.
TOOL_MODULES: tuple[str, ...] = ("app",)
COMMAND_MODULES = STAGE_MODULES + TOOL_MODULES


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every stage's subcommand, or only the stage named ``only`` (its command): a job imports
    just its own stage's modules, not every stage's (pandas, PyAV: 0.4 s a job)."""
    parser = argparse.ArgumentParser(prog="thne", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for name in COMMAND_MODULES:
        if only is not None and name.replace("_", "-") != only:
            continue
        stage = importlib.import_module(f"thne.stages.{name}")
        p = sub.add_parser(stage.COMMAND, help=stage.HELP, description=stage.HELP)
        stage.add_arguments(p)
        p.set_defaults(func=stage.run)
    return parser


def subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The subcommands of ``parser`` (:func:`build_parser`): ``.choices`` maps each name to
    its parser."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    named = argv[0] if argv and argv[0].replace("-", "_") in COMMAND_MODULES else None
    args = build_parser(named).parse_args(argv)
    # A job killed earlier may have left temporaries of this job's outputs; at MOSEI scale
    # they are large partial HDF5 files, and nothing else would ever remove them.
    for path in _output_paths(args):
        for stale in remove_stale(path):
            print(f"removed {stale}, left by an interrupted run", file=sys.stderr)
    try:
        try:
            args.func(args)
        except OSError as exc:
            full = disk_full(exc)
            if full is None:
                raise
            raise full from exc
    except InputError as exc:
        if os.environ.get("THNE_DEBUG"):
            raise
        print(error_line(args.stage, exc), file=sys.stderr)
        if not isinstance(exc, DiskFull):  # a full disk is told whole in its one line
            print("(set THNE_DEBUG=1 for the traceback)", file=sys.stderr)
        raise SystemExit(1) from None


def disk_full(exc: OSError) -> DiskFull | None:
    """A full disk met outside thne's own writers (a library's cache, a temporary file, which
    may not say its name) as the error thne tells; None for any other OSError."""
    if not is_disk_full(exc):
        return None
    return DiskFull(exc.filename or os.path.join(tempfile.gettempdir(), "(a temporary file)"))


def error_line(stage: str, exc: InputError) -> str:
    """How ``thne <stage>`` tells a user's error (``thne app`` shows the same on its page)."""
    return f"thne {stage}: error: {exc}"


def _output_paths(args: argparse.Namespace) -> list[str]:
    """The values of a stage's output flags: ``--out``, ``--out-*`` and ingest's outputs."""
    names = ("manifest", "excluded", "splits") if args.stage == "ingest" else ()
    return [
        value
        for key, value in vars(args).items()
        if isinstance(value, str) and (key == "out" or key.startswith("out_") or key in names)
    ]


if __name__ == "__main__":
    main()
