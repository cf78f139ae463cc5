"""``thne download``: one file over HTTP(S), resumable, retried, with mirrors and a checksum."""

from __future__ import annotations

import argparse

COMMAND = "download"
HELP = "fetch a file over HTTP(S): resumable, retried, mirrors, checksum"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True)
    parser.add_argument(
        "--mirror", action="append", default=[], help="further URLs, tried in order"
    )
    parser.add_argument("--sha256", default=None)
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--config-key",
        default="",
        help="the config key that named this URL (e.g. datasets.mosei.source.url): a failed "
        "download then says which keys avoid it",
    )


def run(args: argparse.Namespace) -> None:
    from thne.data.download import DownloadError, download, how_to_avoid

    try:
        download([args.url, *args.mirror], args.out, sha256=args.sha256, retries=args.retries)
    except DownloadError as exc:
        if not args.config_key:
            raise
        raise DownloadError(f"{exc}\n{how_to_avoid(args.config_key)}") from exc
