"""Atomic file writing: an interrupted run never leaves a half-written output behind."""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name sits in the same directory, so the final rename is atomic on POSIX
    filesystems, and a killed process leaves only a ``.tmp`` file that no rule takes as output.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Delete the temporaries that killed writers of ``path`` left behind; return them.

    Only one job at a time writes a given output (Snakemake locks its outputs), so every
    ``.<name>.<pid>.tmp`` beside ``path`` is a leftover, and at MOSEI scale a large one.
    """
    final = Path(path)
    prefix = f".{final.name}."
    stale = [
        p
        for p in sorted(final.parent.glob(f"{glob.escape(prefix)}*.tmp"))
        if p.name[len(prefix) : -len(".tmp")].isdigit() and p.is_file()
    ]
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
