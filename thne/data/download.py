"""Download a file over HTTP(S) with mirrors, retries, resume and checksum verification.

Only the standard library speaks HTTP here, so the workflow needs no extra dependency. The body
goes to ``<dest>.part`` beside the destination; a transfer that is cut (or a run that is killed)
leaves that file behind and the next attempt, or the next run, resumes it with a ``Range``
request. The destination name appears only once the file is complete and verified, so no rule
ever takes a half-downloaded file for its input.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from thne.errors import InputError

__all__ = ["DownloadError", "download", "how_to_avoid", "partial_path", "sha256sum"]

_USER_AGENT = "thne-download/1"
# Statuses worth asking again for: the server or something in between is busy or broken for now.
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.IGNORECASE)


class DownloadError(InputError):
    """The file could not be fetched; the message names each URL and what went wrong."""


class _UrlFailed(Exception):
    """This URL will not give the file, so retrying it is pointless; a mirror still may."""


class _Transient(Exception):
    """This attempt failed in a way another attempt at the same URL may not."""


@dataclass(frozen=True)
class _Job:
    dest: Path
    part: Path
    timeout: float
    chunk_size: int
    progress: bool


def how_to_avoid(config_key: str) -> str:
    """What a user whose download failed can set instead, for the config key that named it.

    ``config_key`` is ``datasets.<ds>.source.url`` (the dataset archive) or
    ``datasets.<ds>.source.labels`` (a labels file).
    """
    source = config_key.rsplit(".", 1)[0]
    if config_key.endswith(".labels"):
        return (
            f"to go on without this download, set {config_key} to a local copy of the file, "
            f"or train on a standard feature set (README: 'Training on standard feature sets')"
        )
    return (
        f"to go on without this download, set {source}.raw_dir (an unpacked copy) or "
        f"{source}.archive (an archive on disk), add further URLs under {source}.mirrors, "
        "or train on a standard feature set (README: 'Training on standard feature sets')"
    )


def partial_path(dest: str | os.PathLike) -> Path:
    """Where :func:`download` keeps the unfinished body of ``dest``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def sha256sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so that large archives do not fill memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def download(
    urls: Sequence[str],
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    retries: int = 3,
    backoff: float = 1.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> Path:
    """Fetch ``dest`` from the first of ``urls`` (main URL, then mirrors) that delivers it whole.

    Each URL gets up to ``retries`` attempts, ``backoff * 2**attempt`` seconds apart. Returns
    ``dest`` at once, without touching the network, when it already exists and matches
    ``sha256`` (or no checksum is given). Raises :class:`DownloadError` when disk space is short
    or when every URL has failed.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError("download() needs at least one URL")
    if retries < 1:
        raise ValueError(f"retries must be at least 1, not {retries}")
    dest = Path(dest)
    expected = sha256.strip().lower() if sha256 else None
    if dest.is_file() and (expected is None or sha256sum(dest, chunk_size) == expected):
        return dest

    dest.parent.mkdir(parents=True, exist_ok=True)
    job = _Job(dest, partial_path(dest), timeout, chunk_size, progress)
    failures: list[str] = []
    for n, url in enumerate(urls):
        if n:
            print(f"trying mirror {n} of {len(urls) - 1}: {url}", file=sys.stderr, flush=True)
        try:
            _fetch_with_retries(url, job, retries, backoff)
            _verify_checksum(job, expected)
        except _UrlFailed as exc:
            failures.append(f"{url}: {exc}")
            continue
        # Not thne.io.atomic_path: it deletes its temporary on failure, and this one must stay
        # for the next attempt or run to resume.
        os.replace(job.part, dest)
        return dest
    listing = "\n".join(f"  - {line}" for line in failures)
    raise DownloadError(f"could not download {dest} from any of {len(urls)} URL(s):\n{listing}")


def _fetch_with_retries(url: str, job: _Job, retries: int, backoff: float) -> None:
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    except ValueError as exc:
        raise _UrlFailed(f"not a usable URL ({exc})") from exc
    last: BaseException | None = None
    for attempt in range(retries):
        if attempt:
            wait = backoff * 2 ** (attempt - 1)
            print(
                f"download from {url} failed ({_describe(last)}); trying again in {wait:g} s "
                f"(attempt {attempt + 1} of {retries})",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(wait)
        try:
            _fetch_once(request, job)
            return
        except urllib.error.HTTPError as exc:
            if exc.code not in _TRANSIENT_STATUS:
                raise _UrlFailed(f"HTTP {exc.code} {exc.reason}") from exc
            last = exc
        except (_Transient, urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            last = exc
    raise _UrlFailed(f"failed {retries} time(s), last error: {_describe(last)}")


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, _Transient):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{type(exc).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _fetch_once(request: urllib.request.Request, job: _Job) -> None:
    """One GET that continues the partial file where it stops, up to the end of the body."""
    offset = job.part.stat().st_size if job.part.exists() else 0
    request.remove_header("Range")
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        print(
            f"resuming {job.dest.name} from byte {offset} ({offset / 1e6:.1f} MB already here)",
            file=sys.stderr,
            flush=True,
        )
    try:
        response = urllib.request.urlopen(request, timeout=job.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        with exc:
            remote = _unsatisfied_total(exc.headers.get("Content-Range"))
        if remote == offset:
            return  # the partial file already holds the whole body
        # The partial file is longer than, or unrelated to, the remote file: start over.
        job.part.unlink()
        return _fetch_once(request, job)
    with response:
        start, total = _body_span(response, offset)
        if start not in (0, offset):
            # The server resumed somewhere else; appending would corrupt the file.
            job.part.unlink(missing_ok=True)
            raise _Transient(f"asked to resume at byte {offset}, the server sent byte {start}")
        if total is not None:
            _check_disk_space(request.full_url, job, total - offset)
        _stream(response, job, start, total)
    size = job.part.stat().st_size
    if total is not None and size != total:
        raise _Transient(f"connection ended after {size} of {total} bytes")


def _body_span(response: http.client.HTTPResponse, offset: int) -> tuple[int, int | None]:
    """Where the body starts in the file and the file's full size (``None`` when unknown)."""
    header = (response.headers.get("Content-Length") or "").strip()
    length = int(header) if header.isdigit() else None
    if response.status != 206:
        # A plain 200 is the whole file from byte 0, whatever Range asked for.
        return 0, length
    match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
    if not match:
        raise _Transient(f"206 response without a usable Content-Range for byte {offset}")
    start, total = int(match[1]), match[3]
    if total != "*":
        return start, int(total)
    return start, None if length is None else start + length


def _unsatisfied_total(content_range: str | None) -> int | None:
    match = _UNSATISFIED_RANGE.fullmatch((content_range or "").strip())
    return int(match[1]) if match else None


def _check_disk_space(url: str, job: _Job, needed: int) -> None:
    # Bytes already in the partial file are either kept or freed by the restart, so only the
    # remainder needs room; failing now beats filling the disk halfway through a large archive.
    free = shutil.disk_usage(job.part.parent).free
    if needed > free:
        raise DownloadError(
            f"not enough disk space to download {url} to {job.dest}: {_gb(needed)} still to "
            f"fetch but only {_gb(free)} free in {job.part.parent}"
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB ({n} bytes)"


def _stream(response: http.client.HTTPResponse, job: _Job, start: int, total: int | None) -> None:
    # Appending continues a resumed transfer; "wb" truncates when the server restarts at 0.
    mode = "ab" if start else "wb"
    with (
        open(job.part, mode) as fh,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=job.dest.name,
            file=sys.stderr,
            disable=not job.progress,
            leave=False,
        ) as bar,
    ):
        while chunk := response.read(job.chunk_size):
            fh.write(chunk)
            bar.update(len(chunk))


def _verify_checksum(job: _Job, expected: str | None) -> None:
    if expected is None:
        return
    actual = sha256sum(job.part, job.chunk_size)
    if actual != expected:
        # A wrong body must not be resumed by the next URL or run: drop it.
        job.part.unlink()
        raise _UrlFailed(f"sha256 mismatch: expected {expected}, got {actual}")
