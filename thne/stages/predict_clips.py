"""``thne predict-clips``: the clips to score, checked, as a manifest the feature stages read."""

from __future__ import annotations

import argparse
import sys

from thne.stages._args import add_bad_clip_flag

COMMAND = "predict-clips"
HELP = "media and transcripts to score -> a manifest of checked clips"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="media files (each with a .txt beside it), folders of them, or TSVs with columns "
        "media, text [, start, end, clip]",
    )
    parser.add_argument("--out", required=True, help="the manifest to write")
    parser.add_argument("--excluded", required=True, help="clips left out, with the reason")
    add_bad_clip_flag(parser)


def run(args: argparse.Namespace) -> None:
    import pandas as pd

    from thne.io import atomic_path
    from thne.predict.inputs import check_inputs, read_inputs, write_clips

    clips, rejected = check_inputs(read_inputs(args.inputs), args.on_bad_clip)
    write_clips(args.out, clips)
    rows = [(r.clip.clip_id, r.clip.media, r.reason) for r in rejected]
    with atomic_path(args.excluded) as tmp:
        pd.DataFrame(rows, columns=["clip", "media", "reason"]).to_csv(tmp, sep="\t", index=False)
    for clip_id, _, reason in rows:
        print(f"predict-clips: excluded clip {clip_id}: {reason}", file=sys.stderr)
    print(f"predict-clips: {len(clips)} clip(s), {len(rows)} excluded", file=sys.stderr)
