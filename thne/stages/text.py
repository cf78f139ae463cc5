"""``thne text``: transcripts tokenised with the text encoder's own tokenizer."""

from __future__ import annotations

import argparse
import sys

COMMAND = "text"
HELP = "tokenize transcripts -> text.h5"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--encoder", default="all-MiniLM-L6-v2")
    parser.add_argument("--max-length", type=int, default=50)


def run(args: argparse.Namespace) -> None:
    from thne.text.tokenize import tokenize_manifest

    cut = tokenize_manifest(
        args.manifest, args.out, encoder=args.encoder, max_length=args.max_length
    )
    print(f"tokenized; {cut} transcript(s) cut at {args.max_length} tokens", file=sys.stderr)
