"""Atomic file writing: an interrupted run never leaves a half-written output behind, and a
full disk is told in one line that names the file."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from thne.errors import InputError

# A write that failed for want of room: the disk is full, or the user's quota is spent.
NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
NO_SPACE_WORDS = ("no space left on device", "disk quota exceeded", "errno = 28", "errno = 122")
# Room kept free beyond what a write needs (HDF5's metadata, written when a file closes).
NEARLY_FULL_BYTES = 4 << 20
# torch's writer reports a short write without its errno ("unexpected pos 982528 vs 982422",
# "PytorchStreamWriter failed writing file"); a probe of this size then tells whether it was
# for want of room, under a quota too.
PROBE_BYTES = 1 << 20


class DiskFull(InputError):
    """A write failed because the filesystem (or the user's quota) had no room left."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        free = free_bytes(self.path.parent)
        if self.path.is_absolute():
            top = str(self.path.parent)
        else:  # the output's top folder; a bare file name is in the working directory
            top = self.path.parts[0] if len(self.path.parts) > 1 else "."
        super().__init__(
            f"no space left on device while writing {self.path} ({free / 1e6:.0f} MB free); "
            f"free space or move {top.rstrip('/')}/ to a disk with room (a link to it works)"
        )


def free_bytes(folder: str | os.PathLike) -> int:
    """Bytes free to this user on the filesystem of ``folder`` (or of its nearest parent)."""
    where = Path(folder).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free


def is_disk_full(exc: BaseException, folder: str | os.PathLike | None = None) -> bool:
    """Whether ``exc`` is a write that failed for want of room, by its errno, its words (HDF5
    puts the errno in the message), or, for torch's writer, which hides the errno, by a probe
    write into ``folder`` (made while the failed write's partial file still takes its room)."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        return True
    text = str(exc).lower()
    if any(words in text for words in NO_SPACE_WORDS):
        return True
    torch_writer = isinstance(exc, RuntimeError) and (
        "unexpected pos" in text or "pytorchstreamwriter" in text or "file write failed" in text
    )
    return torch_writer and folder is not None and not _room_for_probe(Path(folder))


def _room_for_probe(folder: Path) -> bool:
    probe = folder / f".thne-probe.{os.getpid()}.tmp"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return exc.errno not in NO_SPACE_ERRNOS
    finally:
        probe.unlink(missing_ok=True)
    return True


def ensure_room(path: str | os.PathLike, nbytes: int) -> None:
    """Raise ``ENOSPC`` for ``path`` unless its filesystem has room for ``nbytes`` more and a
    margin. HDF5 needs this check before it writes: on a full disk it raises nothing where the
    write is made, then prints a traceback for every object it frees and may crash at exit."""
    if free_bytes(Path(path).parent) < nbytes + NEARLY_FULL_BYTES:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name sits in the same directory, so the final rename is atomic on POSIX
    filesystems, and a killed process leaves only a ``.tmp`` file that no rule takes as output.
    A write that fails for want of room removes the temporary file and raises
    :class:`DiskFull`, which names ``path``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    full: BaseException | None = None
    try:
        yield tmp
        os.replace(tmp, final)
    except DiskFull:
        raise  # named already, by an atomic_path inside this one
    except Exception as exc:
        if not is_disk_full(exc, final.parent):
            raise
        full = exc
    finally:
        if tmp.exists():
            tmp.unlink()
    if full is not None:
        raise DiskFull(final) from full


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
