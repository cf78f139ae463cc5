"""A private cache of librosa's compiled code for each job, seeded from one published copy.

librosa compiles parts of itself with numba on first use (about 30 CPU-seconds) and caches the
machine code on disk, by default inside the installed package, where every job of one
environment writes it. Jobs started together (a cluster starts hundreds of audio shards at once
from one environment) then write the same cache files at the same time, and a worker can load
a half-written one: features that differ between runs, or a worker that crashes.

So each job compiles into, and reads from, a folder of its own (``NUMBA_CACHE_DIR``). The first
job to finish with compiled code publishes a copy of it under the user's cache folder, by one
atomic rename, keyed by everything the machine code depends on; every later job starts from a
copy of that and compiles nothing. A published copy is never written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path


def cache_root() -> Path:
    """``$THNE_CACHE_DIR``, else ``$XDG_CACHE_HOME/thne``, else ``~/.cache/thne``."""
    if os.environ.get("THNE_CACHE_DIR"):
        return Path(os.environ["THNE_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg) / "thne"


def _cpu() -> str:
    """The processor's model and flags: machine code compiled for one may not run on another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(wanted))


def cache_key() -> str:
    # numba files its entries by the absolute path of librosa's modules: a copy published from
    # another environment's librosa holds none of this one's, and every job would compile.
    spec = importlib.util.find_spec("librosa")
    parts = [
        spec.origin if spec else "",
        sys.version,
        platform.machine(),
        _cpu(),
        *(f"{p} {version(p)}" for p in ("numba", "llvmlite", "librosa")),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


@contextlib.contextmanager
def private_numba_cache(root: Path | None = None) -> Iterator[Path]:
    """Point numba's cache at a folder of this process's own for the block (set before numba
    is imported), seeded from the published copy when there is one; publish it afterwards
    when there was none and the block compiled something."""
    published = (root or cache_root()) / "numba" / cache_key()
    private = Path(tempfile.mkdtemp(prefix="thne-numba-"))
    before = os.environ.get("NUMBA_CACHE_DIR")
    try:
        if published.is_dir():
            shutil.copytree(published, private, dirs_exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(private)
        yield private
        if not published.is_dir() and any(private.rglob("*.nbi")):
            _publish(private, published)
    finally:
        if before is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = before
        shutil.rmtree(private, ignore_errors=True)


def _publish(private: Path, published: Path) -> None:
    """Copy ``private`` to ``published`` in one rename; a copy another job published first
    wins, and this one is dropped."""
    published.parent.mkdir(parents=True, exist_ok=True)
    staging = published.with_name(f".{published.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(private, staging)
        os.rename(staging, published)
    except OSError:
        # Published by another job meanwhile (the rename found a folder there), or no room:
        # either way this job's features are made; only the next job's start-up is longer.
        pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> None:
    """Compile librosa's code for both pitch trackers and publish it, unless a copy for this
    environment is published already: ``python -m thne.features.numba_cache``, which ``make
    install`` runs, so that the audio jobs of a first run start side by side on a warm cache
    instead of each compiling the same code (about 25 CPU-seconds a job)."""
    published = cache_root() / "numba" / cache_key()
    if published.is_dir():
        print(f"librosa's compiled code: published already, {published}")
        return
    with private_numba_cache():
        from thne.features.audio import AudioConfig, warm_up
        from thne.features.pitch import PITCH_TRACKERS

        for tracker in PITCH_TRACKERS:
            warm_up(AudioConfig(pitch_tracker=tracker))
    print(f"librosa's compiled code: published {published}")


if __name__ == "__main__":
    main()
