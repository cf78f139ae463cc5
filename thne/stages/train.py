"""``thne train``: one seed of one variant, trained and tested, into a run directory."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from thne.stages._args import add_dataclass_flags, dataclass_from_args

COMMAND = "train"
HELP = "train one seed of one variant -> run directory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from thne.train.config import TrainConfig

    for name in ("manifest", "text", "audio", "visual", "out-dir"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--visual-stats", help="statistics from thne stats (default: fit on train)")
    parser.add_argument("--audio-stats", help="statistics from thne stats (default: fit on train)")
    parser.add_argument(
        "--device",
        default="auto",
        help="auto or cuda (a free GPU; auto: the CPU where there is none), cpu, cuda:N (as given)",
    )
    parser.add_argument(
        "--jobs-per-gpu",
        type=int,
        default=1,
        help="training jobs that share one GPU (auto and cuda take a free slot of one)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for torch (0: its default)"
    )
    add_dataclass_flags(parser, TrainConfig)


def run(args: argparse.Namespace) -> None:
    import torch

    from thne.train.data import load_dataset
    from thne.train.loop import train_run

    if args.threads:
        torch.set_num_threads(args.threads)
    from thne.devices import resolve_device

    if args.jobs_per_gpu < 1:
        sys.exit(f"thne train: --jobs-per-gpu {args.jobs_per_gpu}: give 1 or more")
    try:
        device = resolve_device(args.device, per_gpu=args.jobs_per_gpu)
    except (RuntimeError, ValueError) as exc:
        sys.exit(f"thne train: {exc}")
    print(f"training on {device}", file=sys.stderr)
    cfg = train_config(args)
    data = load_dataset(
        args.manifest,
        args.text,
        args.audio,
        args.visual,
        max_frames=cfg.max_frames,
        visual_stats=args.visual_stats,
        audio_stats=args.audio_stats,
        device=device,
    )
    metrics = train_run(data, cfg, args.out_dir, device=device)
    print(f"best validation MAE {metrics['mae']:.4f}", file=sys.stderr)


def train_config(args: argparse.Namespace):
    """TrainConfig from the flags; the model, switches and loss weights not given come from
    the variant's entry where the variant is a shipped one (thne/variants.py: ``residual``
    trains with alpha 0.05, as the workflow runs it), else from TrainConfig's defaults."""
    from thne.train.config import TrainConfig
    from thne.variants import SHIPPED_VARIANTS, SWITCHES, variant_values

    entry = SHIPPED_VARIANTS.get(args.variant)
    if args.model is not None and (entry or {}).get("model", "thne") != args.model:
        entry = {"model": args.model}
    elif entry is None:
        if all(getattr(args, s) is None for s in SWITCHES):
            sys.exit(
                f"thne train: variant {args.variant!r} is not one of "
                f"{', '.join(SHIPPED_VARIANTS)}; name one of those, or give its switches "
                "(--deno1/--no-deno1 and so on)"
            )
        entry = {}
    preset = variant_values(entry)
    for f in dataclasses.fields(TrainConfig):
        if getattr(args, f.name, None) is None:
            setattr(args, f.name, preset.get(f.name, f.default))
    return dataclass_from_args(TrainConfig, args)
