import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO
from thne.cli import STAGES


def _normalise(req: str) -> str:
    return re.sub(r"\s+", "", req).lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda and "pip" in conda
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "--editable ." in pip
    assert sorted(map(_normalise, (p for p in pip if not p.startswith("-")))) == sorted(
        map(_normalise, deps)
    )


def test_cli_lists_every_stage():
    import argparse

    from thne.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert tuple(sub.choices) == STAGES
    out = subprocess.run(
        [sys.executable, "-m", "thne.cli", "--help"], capture_output=True, text=True, check=True
    )
    for stage in STAGES:
        assert re.search(rf"^\s+{stage}\s", out.stdout, re.M), stage
