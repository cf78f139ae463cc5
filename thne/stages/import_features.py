"""``thne import-features``: a published feature set -> manifest, splits and feature files.

Stands in for ingest and extraction where a dataset's source is a feature set (CMU SDK
sequences, MMIM/MISA pickles, MMSA pickles): no media is decoded.
"""

from __future__ import annotations

import argparse
import sys

from thne.data.feature_import import IMPORT_LAYOUTS
from thne.stages._args import add_bad_clip_flag

COMMAND = "import-features"
HELP = "a published feature set -> manifest, excluded, splits, audio.h5 and visual.h5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", choices=IMPORT_LAYOUTS, required=True)
    parser.add_argument(
        "--dataset", required=True, help="mosi or mosei: its standard folds and Table 1 row"
    )
    sdk = parser.add_argument_group("sdk layout: computational sequences (.csd)")
    for role in ("labels", "words", "acoustic", "visual"):
        sdk.add_argument(f"--{role}-csd", help=f"the {role} sequence")
    parser.add_argument(
        "--pickles",
        help="mmim: the folder with train.pkl, dev.pkl, test.pkl; mmsa_pkl: the .pkl file",
    )
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--excluded", required=True)
    parser.add_argument("--splits", required=True)
    parser.add_argument("--audio", required=True, help="the acoustic feature file to write")
    parser.add_argument("--visual", required=True, help="the visual feature file to write")
    add_bad_clip_flag(parser)


def run(args: argparse.Namespace) -> None:
    from thne.data.feature_import import write_import

    outputs = {
        "manifest": args.manifest,
        "excluded": args.excluded,
        "splits": args.splits,
        "audio": args.audio,
        "visual": args.visual,
        "dataset": args.dataset,
        "layout": args.layout,
        "on_bad_clip": args.on_bad_clip,
    }
    if args.layout == "sdk":
        from thne.data.sdk import open_sequence, read_sdk
        from thne.data.splits import standard_folds

        missing = [
            r for r in ("labels", "words", "acoustic", "visual") if not getattr(args, f"{r}_csd")
        ]
        if missing:
            sys.exit(f"thne import-features: the sdk layout needs --{'-csd, --'.join(missing)}-csd")
        sequences = []
        try:
            for role in ("labels", "words", "acoustic", "visual"):
                sequences.append(open_sequence(getattr(args, f"{role}_csd"), role))
            features, total, items = read_sdk(*sequences, folds=standard_folds(args.dataset))
            kept, _ = write_import(features, items, total=total, **outputs)
        finally:
            for seq in sequences:
                seq.close()
    else:
        from thne.data.pickles import read_pickles

        if not args.pickles:
            sys.exit(f"thne import-features: the {args.layout} layout needs --pickles")
        features, total, items = read_pickles(args.layout, args.pickles)
        kept, _ = write_import(features, items, total=total, **outputs)
    print(f"imported {len(kept)} clips: {features.description}", file=sys.stderr)
