"""``thne app``: a local web page over trained runs, where a clip is scored as
``thne predict`` scores it (:mod:`thne.app`)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import tempfile
from pathlib import Path

from thne.stages.predict import add_compute_flags

COMMAND = "app"
HELP = "a local web page: choose trained runs, give a clip and its transcript, see the score"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        default="results",
        help="where to look for trained runs (results/<ds>/runs/<variant>/seed<n> and "
        "tuned/<variant>/seed<n>); ignored when --run or --ensemble is given",
    )
    parser.add_argument(
        "--run", action="append", default=[], help="a run directory to offer (repeatable)"
    )
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        help="a variant's directory, offered as all its seeds averaged (repeatable)",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"the address to listen on (default {DEFAULT_HOST}: this machine only)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the port to listen on")
    parser.add_argument(
        "--work",
        help="keep each request's clip, features and results here (default: a temporary "
        "folder, removed when the app stops)",
    )
    add_compute_flags(parser)


def run(args: argparse.Namespace) -> None:
    from thne.app.catalog import find_choices, given_choices
    from thne.errors import InputError

    if importlib.util.find_spec("gradio") is None:
        raise InputError('the page needs Gradio: pip install -e ".[app]" (make install has it)')
    if args.run or args.ensemble:
        choices = given_choices(args.run, args.ensemble)
    else:
        choices, skipped = find_choices(args.results)
        for line in skipped:
            print(f"app: not offered: {line}", file=sys.stderr)
    if not choices:
        raise InputError(
            f"{args.results}: no trained runs under it (<ds>/runs/<variant>/seed<n> or "
            "<ds>/tuned/<variant>/seed<n>); train one (make demo) or name one with --run"
        )
    if args.host not in (DEFAULT_HOST, "localhost", "::1"):
        print(
            f"app: listening on {args.host}: anyone who can reach this machine on port "
            f"{args.port} can use the page and score media with these runs; there is no login",
            file=sys.stderr,
        )
    # Stopped like Ctrl-C, so that the server closes and the scratch folder is removed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        # A request still running when the app stops may write into the folder as it goes.
        with tempfile.TemporaryDirectory(prefix="thne-app-", ignore_cleanup_errors=True) as tmp:
            _serve(args, choices, Path(args.work or tmp).resolve())
    except KeyboardInterrupt:
        print("app: stopped", file=sys.stderr)


def _serve(args: argparse.Namespace, choices: list, work: Path) -> None:
    from thne.features.numba_cache import private_numba_cache

    work.mkdir(parents=True, exist_ok=True)
    # Set before Gradio is imported, which reads them then: no telemetry or version check,
    # no model hub, and uploads kept in this app's folder rather than one shared in /tmp.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_TEMP_DIR"] = str(work / "uploads")
    # Before librosa is imported (by the pipeline): see thne/features/numba_cache.py.
    with private_numba_cache():
        from thne.app.page import build_page, serve

        for c in choices:
            print(f"app: {c.label}: {c.describe()}", file=sys.stderr)
        page = build_page(choices, work, device=args.device, threads=args.threads)
        serve(page, work, host=args.host, port=args.port)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
