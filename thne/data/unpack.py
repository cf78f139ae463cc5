"""Unpack a zip or tar archive safely and restartably.

Every entry is checked before anything is written: none may land outside the target directory,
whether through ``..``, an absolute name or (in tars) a link; no tar symlink or hard link may
point outside it; and no entry may be a device file, a FIFO or (in zips) a symlink. Extraction
goes to a hidden ``.<target>.partial`` sibling that is renamed onto the target only once a
marker file records the finished unpack, so a killed run never leaves a directory that looks
complete.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from tqdm import tqdm

from thne.errors import InputError
from thne.io import write_json

__all__ = ["MARKER", "CorruptArchive", "UnpackError", "unpack"]

MARKER = ".thne-unpacked"
_ZIP_SUFFIXES = (".zip",)
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# What a damaged compressed stream raises while being read, besides the archive modules' own.
_CORRUPT = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    EOFError,
    gzip.BadGzipFile,
    lzma.LZMAError,
)
# Python before 3.11.4 has no extraction filters; our own checks then stand alone.
_FILTER_ERROR = getattr(tarfile, "FilterError", ())
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnpackError(InputError):
    """The archive cannot be unpacked safely; the message names the archive and the reason."""


class CorruptArchive(UnpackError):
    """The archive's bytes are damaged, cut short, or not an archive at all."""


def unpack(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    *,
    progress: bool = True,
    move_corrupt_aside: bool = False,
) -> Path:
    """Extract ``archive`` (.zip, .tar, .tar.gz, .tgz, ...) into the directory ``target``.

    Returns ``target`` at once when it already holds a finished unpack of this archive (same
    name and size). Raises :class:`UnpackError` for an unsafe entry, a corrupt archive, or a
    ``target`` that exists but is not a finished unpack of it; that directory is left untouched.
    With ``move_corrupt_aside`` (for an archive this workflow downloaded, never a user's own
    file), a corrupt archive is renamed to ``<name>.corrupt``, so that the next run downloads
    it again instead of failing on the same bytes.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise UnpackError(f"cannot unpack {archive}: no such file")
    stamp = {"archive": archive.name, "size": archive.stat().st_size}
    if target.exists():
        _check_existing(archive, target, stamp)
        return target

    partial = target.parent / f".{target.name}.partial"
    if partial.exists():
        # Left by an interrupted unpack: only ever ours, so it is safe to throw away.
        shutil.rmtree(partial)
    try:
        _extract(archive, partial, progress)
        write_json(partial / MARKER, stamp)
        os.replace(partial, target)
    except CorruptArchive as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if not move_corrupt_aside:
            raise
        aside = archive.with_name(archive.name + ".corrupt")
        os.replace(archive, aside)
        raise CorruptArchive(
            f"{exc}\nmoved it aside to {aside}, so the next run downloads it again "
            "(give a sha256 in the config to catch a damaged download before unpacking)"
        ) from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return target


def _check_existing(archive: Path, target: Path, stamp: dict[str, object]) -> None:
    marker = target / MARKER
    if not marker.is_file():
        raise UnpackError(
            f"cannot unpack {archive} into {target}: it already exists without a {MARKER} marker, "
            "so it is not a finished unpack (maybe user data or a foreign copy); move or remove it"
        )
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        found = None
    if found != stamp:
        raise UnpackError(
            f"cannot unpack {archive} into {target}: it holds a different unpack ({found}, this "
            f"archive is {stamp}); remove {target} to unpack again"
        )


def _extract(archive: Path, partial: Path, progress: bool) -> None:
    kind = _kind(archive)
    try:
        if kind == "zip":
            _extract_zip(archive, partial, progress)
        else:
            _extract_tar(archive, partial, progress)
    except _FILTER_ERROR as exc:
        # The stdlib's own check, kept as a second line behind ours.
        raise UnpackError(f"refusing to unpack {archive}: {exc}") from exc
    except _CORRUPT as exc:
        raise CorruptArchive(
            f"{archive} is corrupt or truncated: {type(exc).__name__}: {exc}"
        ) from exc
    except OSError as exc:
        raise UnpackError(f"could not unpack {archive} into {partial}: {exc}") from exc


def _kind(archive: Path) -> str:
    name = archive.name.lower()
    if name.endswith(_ZIP_SUFFIXES):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    # Downloads sometimes carry odd names; the content still tells.
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    with open(archive, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        # A zip whose central directory (at its end) is missing: a cut download.
        raise CorruptArchive(f"cannot unpack {archive}: a zip archive that is corrupt or truncated")
    raise CorruptArchive(
        f"cannot unpack {archive}: not a readable zip or tar archive (corrupt, truncated, or "
        f"another format; known: {', '.join(_ZIP_SUFFIXES + _TAR_SUFFIXES)})"
    )


def _bar(items: list, archive: Path, progress: bool) -> Iterable:
    return tqdm(
        items, desc=archive.name, unit="file", file=sys.stderr, disable=not progress, leave=False
    )


def _extract_zip(archive: Path, partial: Path, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _check_path(archive, info.filename, info.filename, set())
            _check_zip_type(archive, info)
        partial.mkdir(parents=True)
        # Reading each member checks its CRC, so damage inside surfaces here as BadZipFile.
        for info in _bar(members, archive, progress):
            zf.extract(info, partial)


def _check_zip_type(archive: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a zip entry whose Unix mode (the high half of ``external_attr``, 0 when the
    archive was made elsewhere) says it is a symlink or another special file. zipfile would
    write it as a plain file holding the link's target, which the data never needs."""
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        what = "a symlink" if stat.S_ISLNK(mode) else "a device file, FIFO or socket"
        _refuse(archive, info.filename, f"{what} (Unix mode {mode:o})")


def _extract_tar(archive: Path, partial: Path, progress: bool) -> None:
    with tarfile.open(archive, "r:*") as tf:
        # Reads the whole stream once, so truncation is found before anything is written.
        members = tf.getmembers()
        _check_tar_members(archive, members)
        partial.mkdir(parents=True)
        # extractall sets directory permissions last, so a read-only directory still gets filled.
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(partial, members=_bar(members, archive, progress), **extra)


def _check_tar_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    links = {_lexical(m.name) for m in members if m.issym() or m.islnk()}
    for m in members:
        _check_path(archive, m.name, m.name, links)
        if m.issym():
            if _is_absolute(m.linkname):
                _refuse(archive, m.name, f"symlink to the absolute path {m.linkname!r}")
            # A symlink's target is relative to the directory holding the link.
            _check_path(
                archive, m.name, posixpath.join(posixpath.dirname(m.name), m.linkname), links
            )
        elif m.islnk():
            _check_path(archive, m.name, m.linkname, links)
        elif m.ischr() or m.isblk():
            _refuse(archive, m.name, "a device file")
        elif m.isfifo():
            _refuse(archive, m.name, "a FIFO")
        elif not (m.isfile() or m.isdir()):
            _refuse(archive, m.name, "a special file")


def _check_path(archive: Path, entry: str, path: str, links: set[str]) -> None:
    """Refuse ``path`` (relative to the target) if it leaves the target or goes through a link.

    Walking through one of the archive's own links is refused too: its target is only known
    lexically, and a chain of links that each look harmless can still lead outside.
    """
    if _is_absolute(path):
        _refuse(archive, entry, f"absolute path {path!r}")
    walked: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if walked and "/".join(walked) in links:
            _refuse(archive, entry, f"path {path!r} goes through the link {'/'.join(walked)!r}")
        if part == "..":
            if not walked:
                _refuse(archive, entry, f"path {path!r} leads outside the target directory")
            walked.pop()
        else:
            walked.append(part)


def _lexical(name: str) -> str:
    walked: list[str] = []
    for part in name.split("/"):
        if part == "..":
            if walked:
                walked.pop()
        elif part not in ("", "."):
            walked.append(part)
    return "/".join(walked)


def _is_absolute(path: str) -> bool:
    return path.startswith(("/", "\\")) or bool(_DRIVE.match(path))


def _refuse(archive: Path, entry: str, why: str) -> None:
    raise UnpackError(f"refusing to unpack {archive}: entry {entry!r} is unsafe ({why})")
