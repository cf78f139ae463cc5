from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

# Nothing in the tests may reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

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
    import shutil

    from PIL import Image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "headless Chromium is needed (.ci/run installs Debian's chromium)"
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu"]
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
