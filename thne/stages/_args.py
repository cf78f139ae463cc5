"""Flags that several stages share."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Sequence
from typing import Any

from thne.data.clips import BAD_CLIP_POLICIES


def csv(value: str) -> tuple[str, ...]:
    """A comma-separated flag value as a tuple, blanks dropped."""
    return tuple(v.strip() for v in value.split(",") if v.strip())


def add_shard_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard", type=int, default=None, help="only this shard (0-based)")
    parser.add_argument("--shard-size", type=int, default=16, help="videos per shard")


def add_bad_clip_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-bad-clip",
        choices=BAD_CLIP_POLICIES,
        default="fail",
        help="stop at a clip whose media cannot be used, or exclude and record it",
    )


def add_table_flags(parser: argparse.ArgumentParser) -> None:
    """What a results table names beside its numbers: the features, the encoder, the paper."""
    parser.add_argument("--visual", required=True, help="visual.h5 the runs used")
    parser.add_argument("--audio", required=True, help="audio.h5 the runs used")
    parser.add_argument("--encoder", required=True, help="the text encoder the runs used")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument(
        "--paper", default=None, help="the paper's rows of this dataset (default --dataset)"
    )


def add_dataclass_flags(
    parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()
) -> None:
    """One flag per field of the dataclass ``cls`` (``--field-name``), typed as the field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        kind = hints[f.name]
        flag = f"--{f.name.replace('_', '-')}"
        if kind is bool:
            # None: not given, so the caller can fill it from elsewhere (a variant's preset).
            parser.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"(default: the variant's, else {f.default})",
            )
            continue
        parser.add_argument(flag, type=kind, default=None, help=f"(default: {f.default})")


def dataclass_from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """An instance of the dataclass ``cls`` from the flags :func:`add_dataclass_flags` made."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{**values, **extra})


# thne.evaluate.significance.UNITS, written here so that building the parser loads no numpy.
BOOTSTRAP_UNITS: tuple[str, ...] = ("video", "clip")


def add_bootstrap_flags(parser: argparse.ArgumentParser) -> None:
    """The paired bootstrap's flags: resamples, seed, what a resample draws and the manifest
    that says each clip's video."""
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default: 10,000)")
    parser.add_argument("--bootstrap-seed", type=int, help="bootstrap random seed (default: 0)")
    parser.add_argument(
        "--bootstrap-unit",
        choices=BOOTSTRAP_UNITS,
        default="video",
        help="what a resample draws: whole test videos (their clips' errors correlate) or clips",
    )
    parser.add_argument(
        "--manifest",
        help="the dataset's manifest.tsv: each test clip's video (--bootstrap-unit video)",
    )


def bootstrap_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of the bootstrap from add_bootstrap_flags' flags. Unset resamples and
    seed keep the module's defaults, the numbers the tables say they used."""
    from thne.evaluate.aggregate import manifest_videos

    options: dict[str, Any] = {
        k: v
        for k, v in (("resamples", args.resamples), ("seed", args.bootstrap_seed))
        if v is not None
    }
    options["unit"] = args.bootstrap_unit
    options["videos"] = manifest_videos(args.manifest) if args.manifest else None
    return options
