"""``thne ingest``: a dataset's own files -> manifest, exclusion list and split report."""

from __future__ import annotations

import argparse
import sys

from thne.stages._args import add_bad_clip_flag

COMMAND = "ingest"
HELP = "dataset files -> manifest.tsv, excluded.tsv and splits.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thne.data.ingest import LAYOUTS

    parser.add_argument("--layout", choices=LAYOUTS, required=True)
    parser.add_argument(
        "--raw-dir", required=True, help="unpacked dataset (folder of label.csv and Raw/)"
    )
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--excluded", required=True)
    parser.add_argument(
        "--splits", help="write the split report (counts beside paper Table 1) here"
    )
    parser.add_argument(
        "--dataset", default="", help="mosi or mosei: picks the CMU reader and folds"
    )
    parser.add_argument("--labels", help="CMU-MOSEI labels computational sequence (.csd)")
    parser.add_argument("--threads", type=int, default=1)
    add_bad_clip_flag(parser)


def run(args: argparse.Namespace) -> None:
    from thne.data.ingest import ingest, read_layout
    from thne.data.splits import write_splits_report

    clips, refused = read_layout(
        args.layout, args.raw_dir, dataset=args.dataset, labels=args.labels
    )
    kept, rejected = ingest(
        clips,
        args.manifest,
        args.excluded,
        on_bad_clip=args.on_bad_clip,
        threads=args.threads,
        rejected=refused,
    )
    if args.splits:
        report = write_splits_report(
            args.splits,
            kept,
            [(r.clip, r.reason) for r in rejected],
            dataset=args.dataset,
            layout=args.layout,
        )
        if "difference" in report:
            print(f"difference to paper Table 1: {report['difference']}", file=sys.stderr)
