"""``thne predict``: score new media with a trained run (or every seed of a variant), and
optionally draw where the text looked (Eq. 2)."""

from __future__ import annotations

import argparse
import sys

from thne.stages._args import add_bad_clip_flag

COMMAND = "predict"
HELP = "score new videos with a trained run -> predictions.tsv (and --explain figures)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="a media file (with --text or a .txt beside it), a folder of media files each "
        "with a .txt transcript beside it, or a TSV with columns media, text [, start, end, clip]",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--run",
        action="append",
        help="a run directory, results/<ds>/runs/<variant>/seed<n>; given more than once, "
        "the runs' predictions are averaged",
    )
    which.add_argument(
        "--ensemble",
        help="a variant's directory, results/<ds>/runs/<variant>: every seed, averaged",
    )
    parser.add_argument("--text", help="the transcript of a single media INPUT")
    parser.add_argument("--out", required=True, help="predictions.tsv to write")
    parser.add_argument(
        "--excluded",
        help="where clips left out are listed with the reason (default: beside --out, "
        "<out>.excluded.tsv)",
    )
    parser.add_argument("--explain", help="write one figure per clip and index.html here")
    parser.add_argument(
        "--work",
        help="keep the clips' manifest and feature files here (default: a temporary folder)",
    )
    parser.add_argument(
        "--manifest", help="the clips (a manifest written by thne predict), instead of INPUT"
    )
    parser.add_argument("--audio", help="with --manifest: the clips' acoustic feature file")
    parser.add_argument("--visual", help="with --manifest: the clips' visual feature file")
    add_compute_flags(parser)
    add_bad_clip_flag(parser)


def add_compute_flags(parser: argparse.ArgumentParser) -> None:
    """Where a clip is scored: threads for extraction and the model's device (thne app too)."""
    parser.add_argument("--threads", type=int, default=1, help="clips extracted in parallel")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N")


def run(args: argparse.Namespace) -> None:
    from thne.features.numba_cache import private_numba_cache

    # Before librosa is imported (by the pipeline): see thne/features/numba_cache.py.
    with private_numba_cache():
        _predict(args)


def _predict(args: argparse.Namespace) -> None:
    from thne.predict.pipeline import predict

    if args.manifest and args.inputs:
        sys.exit("thne predict: give INPUT or --manifest, not both")
    if not args.manifest and not args.inputs:
        sys.exit("thne predict: give an INPUT (a media file, a folder or a TSV) or --manifest")
    if bool(args.audio) != bool(args.visual) or (args.audio and not args.manifest):
        sys.exit("thne predict: --audio and --visual go together, with --manifest")
    result = predict(
        args.inputs,
        args.out,
        run=args.run,
        ensemble=args.ensemble,
        text=args.text,
        excluded_path=args.excluded,
        explain=args.explain,
        work=args.work,
        manifest=args.manifest,
        audio=args.audio,
        visual=args.visual,
        on_bad_clip=args.on_bad_clip,
        threads=args.threads,
        device=args.device,
    )
    print(
        f"predict: {result.n_scored} clip(s) scored with {result.n_runs} run(s), "
        f"{result.n_excluded} excluded; wrote {args.out}",
        file=sys.stderr,
    )
