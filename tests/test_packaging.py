import re
import subprocess
import sys
import tomllib

import yaml

from conftest import REPO
from thne.cli import COMMAND_MODULES

# The subcommands, in workflow order: the command line the rules and users call.
COMMANDS = (
    "download",
    "unpack",
    "ingest",
    "audio",
    "visual",
    "openface-plan",
    "merge",
    "stats",
    "text",
    "train",
    "evaluate",
    "aggregate",
    "variants",
    "grid-select",
    "grid-report",
    "table",
    "ablation",
    "loss-curves",
    "report-figures",
    "cases",
    "clip-page",
    "report-pages",
    "import-features",
    "predict-clips",
    "predict",
    "app",
)


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
    from thne.cli import build_parser, subcommands

    assert tuple(subcommands(build_parser()).choices) == COMMANDS
    out = subprocess.run(
        [sys.executable, "-m", "thne.cli", "--help"], capture_output=True, text=True, check=True
    )
    for stage in COMMANDS:
        assert re.search(rf"^\s+{stage}\s", out.stdout, re.M), stage


def test_every_stage_module_is_a_subcommand():
    """Each module of thne/stages is listed, once, and declares the stage interface."""
    import importlib

    on_disk = sorted(
        p.stem for p in (REPO / "thne" / "stages").glob("*.py") if not p.stem.startswith("_")
    )
    assert sorted(COMMAND_MODULES) == on_disk
    assert len(set(COMMAND_MODULES)) == len(COMMAND_MODULES)
    for name in COMMAND_MODULES:
        stage = importlib.import_module(f"thne.stages.{name}")
        assert stage.COMMAND == name.replace("_", "-"), name
        assert stage.HELP and callable(stage.add_arguments) and callable(stage.run), name
