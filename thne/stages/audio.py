"""``thne audio``: acoustic features (librosa) of a manifest's clips, or of one shard's."""

from __future__ import annotations

import argparse
import sys

# thne.features.pitch imports numpy only: `thne --help` builds every stage's flags.
from thne.features.pitch import DEFAULT_PITCH_TRACKER, PITCH_TRACKERS
from thne.stages._args import add_bad_clip_flag, add_shard_flags, csv

COMMAND = "audio"
HELP = "acoustic features (librosa) -> audio.h5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    add_shard_flags(parser)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--win-seconds", type=float, default=0.064)
    parser.add_argument("--hop-seconds", type=float, default=0.02)
    parser.add_argument("--n-mfcc", type=int, default=20)
    parser.add_argument(
        "--groups",
        type=csv,
        default=None,
        help="comma-separated feature groups (default: all of mfcc,rms,zcr,centroid,f0,voicing)",
    )
    parser.add_argument("--fmin", type=float, default=65.0)
    parser.add_argument("--fmax", type=float, default=500.0)
    parser.add_argument(
        "--pitch-tracker",
        choices=PITCH_TRACKERS,
        default=DEFAULT_PITCH_TRACKER,
        help="f0 and voicing: YIN (thne.features.pitch) or librosa's pYIN, about 10x slower",
    )
    parser.add_argument(
        "--f0-resolution", type=float, default=0.25, help="pYIN bin width, semitones"
    )
    parser.add_argument("--threads", type=int, default=1, help="clips processed in parallel")
    add_bad_clip_flag(parser)


def run(args: argparse.Namespace) -> None:
    from thne.features.numba_cache import private_numba_cache

    # Before librosa is imported: numba reads where its cache is when librosa's code loads.
    with private_numba_cache():
        _extract(args)


def _extract(args: argparse.Namespace) -> None:
    from thne.data.shards import read_shard
    from thne.features.audio import AudioConfig, audio_extractor, warm_up
    from thne.features.store import extract_to_h5

    groups = {"groups": args.groups} if args.groups else {}
    cfg = AudioConfig(
        sample_rate=args.sample_rate,
        win_seconds=args.win_seconds,
        hop_seconds=args.hop_seconds,
        n_mfcc=args.n_mfcc,
        fmin=args.fmin,
        fmax=args.fmax,
        pitch_tracker=args.pitch_tracker,
        f0_resolution=args.f0_resolution,
        **groups,
    )
    extractor = audio_extractor(cfg)
    if args.threads > 1:
        warm_up(cfg)
    excluded = extract_to_h5(
        read_shard(args.manifest, args.shard, args.shard_size),
        args.out,
        extractor.extract,
        feature_names=extractor.feature_names,
        extractor=extractor.name,
        config=extractor.config,
        on_bad_clip=args.on_bad_clip,
        desc="audio",
        workers=args.threads,
    )
    for e in excluded:
        print(f"audio: excluded clip {e.clip_id}: {e.reason}", file=sys.stderr)
