"""benchmarks/gpu_check.sh's dry run on the CPU: the offline install of a prepared kit, then
the check's steps, shortened. The GPU run itself needs the machine (see the README)."""

import os
import shutil
import subprocess
import sys

from conftest import REPO


def test_dry_run_installs_the_kit_offline_and_runs_the_steps(tmp_path):
    """A kit holding this package as a wheel (built here without the network, as --prepare
    builds it): the dry run installs it with pip --no-index into a folder of its own and
    imports thne from there, then times one batch. Checked against the script as it was (a
    venv and pip installs from PyPI, no --dry-run and no kit): exit 2, unknown argument."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "thne", src / "thne", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "kit" / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--no-index", "-w", str(wheels), str(src)], check=True)
    [wheel] = wheels.glob("thne-*-py3-none-any.whl")

    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run"]
        + ["--kit", str(tmp_path / "kit"), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
        # No index reachable: what the check installs can only come from the kit.
        env={**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_FIND_LINKS": ""},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    site = out.split(f"installed from {wheels} into ", 1)[1].split(":", 1)[0]
    assert wheel.name in out and f"thne from {site}/thne/__init__.py" in out
    assert "mosi  minilm    on cpu" in out and "samples/s" in out
    assert "would run: " in out and "device_agreement.py --device cuda" in out
    shutil.rmtree(site, ignore_errors=True)
