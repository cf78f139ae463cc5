"""``thne visual``: visual features of a manifest's clips, or of one shard's, with dlib
landmarks or from OpenFace's output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from thne.stages._args import add_bad_clip_flag, add_shard_flags, csv

COMMAND = "visual"
HELP = "visual features (landmarks, head pose, expression) -> visual.h5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    add_shard_flags(parser)
    parser.add_argument("--extractor", choices=("landmarks", "openface"), default="landmarks")
    parser.add_argument(
        "--detect-every", type=int, default=1, help="landmarks: detector every N frames"
    )
    parser.add_argument("--openface-bin", default=None, help="openface: path of FeatureExtraction")
    parser.add_argument(
        "--openface-groups",
        type=csv,
        default=("aus_r", "aus_c", "pose", "gaze"),
        help="openface: comma-separated column groups",
    )
    parser.add_argument(
        "--openface-dir",
        default=None,
        help="openface: where OpenFace is run and its CSVs and log kept (default: beside --out)",
    )
    parser.add_argument(
        "--openface-run",
        default=None,
        help="openface: read the finished run in this folder instead of running OpenFace",
    )
    parser.add_argument(
        "--openface-plan", default=None, help="openface: the plan of --openface-run"
    )
    parser.add_argument("--openface-log", default=None, help="openface: the log named in errors")
    parser.add_argument("--threads", type=int, default=1, help="clips processed in parallel")
    add_bad_clip_flag(parser)


def run(args: argparse.Namespace) -> None:
    from thne.data.shards import read_shard
    from thne.features.landmarks import landmark_extractor
    from thne.features.openface import openface_extractor
    from thne.features.store import extract_to_h5

    clips = read_shard(args.manifest, args.shard, args.shard_size)
    if args.extractor == "openface":
        # With --openface-run the run is read from there (the workflow runs OpenFace in its own
        # rule, possibly inside a container); otherwise OpenFace is run here first.
        if args.openface_run and not args.openface_plan:
            sys.exit("thne visual: --openface-run needs --openface-plan")
        extractor = openface_extractor(
            clips,
            args.openface_groups,
            args.openface_run or args.openface_dir or Path(args.out).with_suffix(".openface"),
            run=not args.openface_run,
            plan=args.openface_plan,
            binary=args.openface_bin,
            threads=args.threads,
            log=args.openface_log,
        )
    elif args.extractor == "landmarks":
        extractor = landmark_extractor(args.detect_every)
    else:
        sys.exit(f"thne visual: unknown extractor {args.extractor!r}; use openface or landmarks")
    excluded = extract_to_h5(
        clips,
        args.out,
        extractor.extract,
        feature_names=extractor.feature_names,
        extractor=extractor.name,
        config=extractor.config,
        on_bad_clip=args.on_bad_clip,
        desc="visual",
        # OpenFace used its threads already; reading its CSVs is quick.
        workers=1 if args.extractor == "openface" else args.threads,
    )
    for e in excluded:
        print(f"visual: excluded clip {e.clip_id}: {e.reason}", file=sys.stderr)
    print(f"visual: clips with frames but no face in any: {_faceless(args.out)}", file=sys.stderr)


def _faceless(path: str) -> int:
    """Clips none of whose frames has a face: not errors (their features are zeros with
    face_detected 0), but a user should know how many."""
    from thne.features.store import read_h5

    features = read_h5(path)
    column = features.feature_names.index("face_detected")
    return sum(not f[:, column].any() for f in features.features.values())
