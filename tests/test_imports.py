"""The package's import graph: no cycles, and code fingerprints that follow imports."""

import re
from pathlib import Path

import pytest

from conftest import REPO
from thne.cli import STAGE_MODULES
from thne.imports import ImportProblem, PackageCode, import_cycles
from thne.workflow.lineage import STEPS


def test_the_package_has_no_import_cycles():
    graph = PackageCode(REPO).graph()
    # The walk sees the package: the stages, the readers and the lazy imports inside functions.
    assert "thne.data.mosi" in graph["thne.data.ingest"]
    assert "thne.stages.train" in graph and "thne.train.loop" in graph["thne.stages.train"]
    assert import_cycles(graph) == []


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    write(tmp_path, "pkg/__init__.py", "")
    write(tmp_path, "pkg/a.py", "from pkg.b import f\n")
    write(tmp_path, "pkg/b.py", "def f():\n    from pkg import c\n    return c\n")
    write(tmp_path, "pkg/c.py", "import pkg.a\n")
    write(tmp_path, "pkg/d.py", "from pkg import a\n")
    graph = PackageCode(tmp_path, package="pkg").graph()
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def package(tmp_path):
    """A package whose stage reaches its modules every way an import can be written."""
    files = {
        "pkg/__init__.py": "",
        "pkg/stages/__init__.py": "",
        # Absolute, inside a function, and a relative import of a sibling package's module.
        "pkg/stages/fit.py": (
            "import argparse\n\nfrom pkg import core\n\n\ndef run(args):\n"
            "    from ..model import net\n\n    return net.forward(core.X)\n"
        ),
        "pkg/core.py": "from . import io\n\nX = 1\n",
        "pkg/io.py": "import json\n",
        "pkg/model/__init__.py": "",
        # A name from a module (not a submodule) and an import_module with a literal name.
        "pkg/model/net.py": (
            "import importlib\n\nfrom pkg.maths import relu\n\n"
            "def forward(x):\n    return importlib.import_module('pkg.plugins.extra').f(relu(x))\n"
        ),
        "pkg/maths.py": "def relu(x):\n    return max(x, 0)\n",
        "pkg/plugins/__init__.py": "",
        "pkg/plugins/extra.py": "def f(x):\n    return x\n",
        "pkg/unused.py": "Y = 2\n",
        "pkg/stages/other.py": "from pkg import unused\n",
    }
    for rel, text in files.items():
        write(tmp_path, rel, text)
    return tmp_path


def fingerprint(root: Path) -> str:
    # A new instance per call: one instance reads each file once.
    return PackageCode(root, package="pkg").fingerprint("pkg.stages.fit")


def test_a_stage_runs_what_it_imports_directly_or_through_others(package):
    assert PackageCode(package, package="pkg").closure("pkg.stages.fit") == [
        "pkg",
        "pkg.core",
        "pkg.io",
        "pkg.maths",
        "pkg.model",
        "pkg.model.net",
        "pkg.plugins",
        "pkg.plugins.extra",
        "pkg.stages",
        "pkg.stages.fit",
    ]


@pytest.mark.parametrize(
    "rel", ["pkg/io.py", "pkg/maths.py", "pkg/plugins/extra.py", "pkg/model/__init__.py"]
)
def test_editing_a_module_the_stage_reaches_changes_its_fingerprint(package, rel):
    before = fingerprint(package)
    path = package / rel
    path.write_text(path.read_text() + "\nZ = 3\n")
    assert fingerprint(package) != before


def test_comments_formatting_and_unrelated_modules_keep_the_fingerprint(package):
    before = fingerprint(package)
    write(package, "pkg/unused.py", "Y = 3\n")
    maths = package / "pkg" / "maths.py"
    maths.write_text("# Rectifier.\ndef relu( x ):\n\n    return max(x,0)  # clipped\n")
    assert fingerprint(package) == before


def test_a_new_import_is_followed(package):
    before = fingerprint(package)
    write(package, "pkg/extra2.py", "W = 1\n")
    assert fingerprint(package) == before
    io = package / "pkg" / "io.py"
    io.write_text(io.read_text() + "from pkg.extra2 import W\n")
    with_import = fingerprint(package)
    assert with_import != before
    write(package, "pkg/extra2.py", "W = 2\n")
    assert fingerprint(package) != with_import


def test_an_import_of_a_missing_module_is_an_error_naming_the_file(package):
    write(package, "pkg/core.py", "from pkg.gone import thing\n")
    with pytest.raises(ImportProblem, match=r"core\.py:1: imports pkg\.gone"):
        fingerprint(package)


def test_every_rule_that_runs_thne_fingerprints_its_stage_module():
    """No rule lists modules by hand: each one calling ``thne <command>`` carries the
    fingerprint of that command's stage module (the download rules excepted on purpose)."""
    text = "".join(p.read_text() for p in sorted((REPO / "workflow" / "rules").glob("*.smk")))
    rules = re.split(r"^(?=(?:rule|checkpoint) \w+:)", text, flags=re.M)[1:]
    seen = set()
    for rule in rules:
        name = re.match(r"(?:rule|checkpoint) (\w+):", rule).group(1)
        command = re.search(r"thne ([a-z-]+)", rule)
        if command is None or command.group(1) == "download":
            continue
        module = command.group(1).replace("-", "_")
        assert module in STAGE_MODULES, name
        # The code param: stage_code(<module>), or code_of(<step>) whose stage it is.
        code = re.search(r'code=(?:stage_code\("(\w+)"\)|code_of\("(\w+)"\))', rule)
        assert code, name
        assert (code.group(1) or STEPS[code.group(2)].stage) == module, name
        seen.add(module)
    assert seen == set(STAGE_MODULES) - {"download"}
    assert "code_version" not in text


def test_a_cached_parse_gives_the_same_fingerprints_and_follows_edits(package, tmp_path):
    """The workflow keeps each module's parse by the hash of its bytes: the same fingerprint
    as a fresh parse, a new one after an edit, and a broken cache file is parsed again."""
    cache = tmp_path / "cache" / "code.json"
    fresh = fingerprint(package)
    cached = PackageCode(package, package="pkg", cache=cache)
    assert cached.fingerprint("pkg.stages.fit") == fresh and cache.is_file()
    again = PackageCode(package, package="pkg", cache=cache)
    assert again.fingerprint("pkg.stages.fit") == fresh
    assert again._trees == {}, "the second instance parsed a module the cache holds"
    io = package / "pkg" / "io.py"
    io.write_text(io.read_text() + "CHANGED = 1\n")
    edited = PackageCode(package, package="pkg", cache=cache).fingerprint("pkg.stages.fit")
    assert edited == fingerprint(package) != fresh
    cache.write_text("{not json")
    assert PackageCode(package, package="pkg", cache=cache).fingerprint("pkg.stages.fit") == edited


def test_a_stage_job_builds_only_its_own_command():
    """``thne audio ...`` imports the audio stage's flags alone, not every stage's (ingest's
    pulls in pandas and PyAV): a job's start-up is its own stage's imports."""
    import subprocess
    import sys

    probe = (
        "import sys; from thne.cli import build_parser; "
        "args = [sys.argv[1], '--manifest', 'm', '--out', 'o']; "
        "build_parser(sys.argv[1]).parse_args(args); "
        "print('pandas' in sys.modules, 'av' in sys.modules)"
    )
    own = subprocess.run([sys.executable, "-c", probe, "audio"], capture_output=True, text=True)
    assert own.stdout.split() == ["False", "False"], own.stderr
    every = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from thne.cli import build_parser; build_parser(); "
            "print('pandas' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert every.stdout.split() == ["True"], every.stderr
