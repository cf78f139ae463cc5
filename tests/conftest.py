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
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, snakefile: Path | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = SNAKEMAKE if snakefile is None else [*SNAKEMAKE[:-1], str(snakefile)]
    proc = subprocess.run(
        [*command, "--directory", str(workdir), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
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
