from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from thne.features.numba_cache import cache_key, cache_root, private_numba_cache

# Nothing in the tests may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _compile_librosa_once() -> None:
    """On a cold cache (a new environment), one audio job compiles librosa's numba code and
    publishes it before any worker starts: otherwise the first audio jobs of every worker
    compile it at once (about 30 CPU-seconds each). tests/test_audio.py's cold-cache test
    keeps a cache of its own, so it still starts cold."""
    if os.environ.get("PYTEST_XDIST_WORKER") or (cache_root() / "numba" / cache_key()).is_dir():
        return
    import tempfile

    from thne.data.manifest import Clip, write_manifest

    media = Path(__file__).resolve().parents[1] / "resources/demo/Raw/demo01/1.mp4"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Clip("demo01_1", "demo01", 0.0, 1.0, "train", 0.0, "x", str(media))
        write_manifest(Path(tmp) / "m.tsv", [clip])
        cmd = [sys.executable, "-m", "thne.cli", "audio", "--manifest", f"{tmp}/m.tsv"]
        proc = subprocess.run(
            [*cmd, "--out", f"{tmp}/a.h5"], env=env, capture_output=True, text=True
        )
    if proc.returncode != 0:
        raise RuntimeError(f"compiling librosa's numba code failed:\n{proc.stderr[-3000:]}")


_compile_librosa_once()

# Tests that call librosa in their own process compile its numba code too, by default into the
# installed package, where two xdist workers compiling at once can write the same cache files
# and one loads the other's half-written code and crashes. Each test process gets a private
# cache, seeded from and published to the shared copy as every audio job's is. It is set here,
# before any test module imports numba, and kept until the process ends.
_NUMBA_CACHE = contextlib.ExitStack()
_NUMBA_CACHE.enter_context(private_numba_cache())


def pytest_unconfigure(config: pytest.Config) -> None:
    _NUMBA_CACHE.close()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: a worker for each core this process may use, and one more where the slow
    (end-to-end) tests run. They spend much of their time waiting (on SLURM's job list, on a
    subprocess's signal, on a checkpoint to appear): one worker a core left a core idle for
    190 of 620 seconds of `make test` on two cores, which the extra worker fills. The unit
    tests (``-m "not slow"``) do not wait, and an extra worker only adds its start-up (82 s
    against 71 s for `make test-fast`). PYTEST_XDIST_AUTO_NUM_WORKERS still overrides it."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0))
    return cores if config.getoption("markexpr") == "not slow" else cores + 1


# Under pytest-xdist, a test that trains in its worker's process takes that worker's share of
# the cores, not every core (torch's default): two workers each spinning two threads on two
# cores slow each other down several times over.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    import torch

    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"
REALDATA = SHARED / "realdata"


def need(path: Path) -> Path:
    """``path``, a file of ../shared that a test reads; name the exact file, not its folder.

    Absent, the test is skipped on a clone without ../shared, and fails where
    ``THNE_REQUIRE_SHARED=1`` says the shared files must be there (CI, .ci/run).
    """
    if not path.is_file():
        message = f"{path} is absent: tests need the shared fixtures beside the repo"
        if os.environ.get("THNE_REQUIRE_SHARED") == "1":
            pytest.fail(f"{message} (THNE_REQUIRE_SHARED=1)")
        pytest.skip(message)
    return path


@pytest.fixture
def media() -> Path:
    """The folder of the shared fixture videos; each test names the file it reads with need()."""
    return FIXTURES / "media"


@pytest.fixture
def realdata() -> Path:
    """The folder of the shared real data; each test names the file it reads with need()."""
    return REALDATA


BIN = Path(sys.executable).parent
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# What a clone's root holds that a workflow run reads: run_snakemake links these into a test's
# folder and runs there, so every test takes the user's path (the repository root as working
# directory, no --directory, no --snakefile) and writes only under its own folder.
ROOT_ENTRIES = (
    "Snakefile",
    "workflow",
    "config",
    "profiles",
    "thne",
    "resources",
    "environment.yml",
)


def repository_root(folder: Path, source: Path = REPO) -> Path:
    """``folder`` laid out as a clone's root: links to ``source``'s workflow, config, profiles,
    package and resources (a copy of the repository, when a test edits code)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ROOT_ENTRIES:
        link = folder / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(source / name)
    return folder


def run_snakemake(
    root: Path, *args: str, check: bool = True, source: Path = REPO
) -> subprocess.CompletedProcess:
    """``snakemake *args`` as the README runs it: from the repository root ``root`` (made one
    with links to ``source`` where it is not a copy already)."""
    if root.resolve() != source.resolve():
        repository_root(root, source)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [*SNAKEMAKE, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def jobs_planned(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule in the summary of a dry run (``-n --quiet rules``); {} for "Nothing to be
    done"."""
    found = re.findall(r"^\s*(\w+)\s+(\d+)\s*$", proc.stdout + proc.stderr, re.M)
    return {rule: int(n) for rule, n in found if rule != "total"}


def jobs_run(proc: subprocess.CompletedProcess) -> list[str]:
    """The rules a run carried out, one entry per job."""
    return re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):", proc.stdout + proc.stderr, re.M)


def tiny_mp4(path: Path, seconds: float = 1.0) -> Path:
    """A real, decodable h264 file of a few kB."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * 5)):
            frame = av.VideoFrame.from_ndarray(
                np.full((32, 32, 3), (i * 20) % 256, np.uint8), format="rgb24"
            )
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def render_page(url: str, shot: Path, size: tuple[int, int], min_colours: int) -> str:
    """Open ``url`` in headless Chromium: a screenshot of ``size`` that must not be blank (at
    least ``min_colours`` colours), and the page's DOM after its scripts ran, returned."""

    from PIL import Image

    common = [chromium(), "--headless", "--no-sandbox", "--disable-gpu"]
    common += ["--hide-scrollbars", "--virtual-time-budget=5000"]
    window = f"--window-size={size[0]},{size[1]}"
    subprocess.run(
        [*common, window, f"--screenshot={shot}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert image.size == size and len(colours) > min_colours, f"{shot} looks blank"
    return subprocess.run(
        [*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120
    ).stdout


def chromium() -> str:
    """The system Chromium, which the browser tests drive; nothing downloads a browser."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed (.ci/run installs Debian's chromium)"
    return found


def watch_page(page, local: str | None = None) -> tuple[list[str], list[str]]:
    """Refuse every request of the Playwright ``page`` that would leave the machine, and
    collect its console errors: (errors, refused URLs), filled in as the page runs. ``local``
    is the origin of a server on this machine (``thne app``'s URL), whose requests go on."""
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def local_only(route) -> None:
        allowed = ("file:", "data:", "blob:") + ((local.rstrip("/"),) if local else ())
        if route.request.url.startswith(allowed):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    return errors, remote


# The demo built once per test session: the workflow tests that need the demo's features, its
# tokenized text and a finished training run copy them from here, with Snakemake's records,
# instead of extracting them again (about two CPU-minutes each on two cores).
DEMO_SPLITS = {"train": 6, "valid": 3, "test": 3}
DEMO_TRAIN = {"max_epochs": 2}
DEMO_TARGET = "results/demo/metrics.json"
# What a finished run leaves in its repository root: outputs, logs, benchmarks and Snakemake's
# metadata (its records of params, code and inputs, keyed by the output's path from the root).
DEMO_OUTPUTS = ("data", "features", "results", "logs", "benchmarks", ".snakemake")


@dataclass(frozen=True)
class DemoBuild:
    """A finished ``snakemake results/demo/metrics.json`` on a demo subset (DEMO_SPLITS, one
    seed of t-HNE trained DEMO_TRAIN["max_epochs"] epochs), made from the repository root
    ``root`` with the config ``config``; ``raw`` is the subset, which every copy reads in place
    (its path is a param of ingest)."""

    root: Path
    raw: Path
    config: Path

    def write_config(self, path: Path, **train) -> Path:
        """A config for this build's subset, as test_workflow.write_config writes one (the
        build's training values under ``train``): with no ``train``, the build's own."""
        from test_workflow import write_config

        return write_config(path, self.raw, **{**DEMO_TRAIN, **train})

    def copy_to(self, dest: Path) -> Path:
        """The build's outputs and Snakemake records copied into the repository root
        ``dest``, with their dates, so that Snakemake finds them up to date there."""
        dest.mkdir(parents=True, exist_ok=True)
        skip = shutil.ignore_patterns("log", "locks", "incomplete")
        for name in DEMO_OUTPUTS:
            shutil.copytree(
                self.root / name,
                dest / name,
                copy_function=shutil.copy2,
                ignore=skip if name == ".snakemake" else None,
                dirs_exist_ok=True,
            )
        return dest


def _build_demo(folder: Path) -> DemoBuild:
    from test_workflow import demo_subset

    raw = demo_subset(folder / "raw", DEMO_SPLITS)
    root = repository_root(folder / "root")
    build = DemoBuild(root, raw, folder / "cfg.yaml")
    build.write_config(build.config)
    run_snakemake(root, "--configfile", str(build.config), "--cores", "2", DEMO_TARGET)
    return build


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory) -> DemoBuild:
    """The session's DemoBuild, made by the first test that asks for it. Under pytest-xdist
    each worker has a session of its own: the build lies beside the workers' temporary
    folders, and a file lock lets one worker make it while the others wait for it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder = base / "demo-build"
    with open(base / "demo-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            done = folder / "done"
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                _build_demo(folder)
                done.touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return DemoBuild(folder / "root", folder / "raw", folder / "cfg.yaml")
