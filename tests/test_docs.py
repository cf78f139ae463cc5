"""The README and the documentation site say only what the software does.

Every fenced shell block of README.md and docs/ is read, command by command:

- each ``snakemake`` command parses with Snakemake's own parser, every flag it names exists as
  written, and its targets plan with ``-n`` against the shipped config and the config files it
  names (from a repository root made of links to this one, as a user runs it; to keep to two
  Snakemake calls, commands whose configs agree on every key they share plan together);
- each ``thne`` command parses with the command's own parser, every flag it names exists as
  written (argparse would accept a prefix of a renamed flag);
- each ``make`` target is a rule of the Makefile; each script run with ``python`` or ``bash``
  exists, and each ``python -m`` module imports.

Every ``yaml`` block is a config file, and validates against the schema with the shipped config
under it. The conventions that let a shell block use one (docs/how-to/development.md says them to
contributors):

- a shell block that passes ``--configfile NAME`` finds NAME in a ``yaml`` block above it on the
  same page whose first line is ``# NAME`` (optionally followed by ``:`` and a comment); the
  nearest such block wins, so two pages may each show their own ``my.yaml``;
- the user's own files are written under ``/data/``. Before planning, those paths are moved into
  a temporary folder and laid out as far as planning reads them (a CMU-MOSI copy's labels file,
  an MMSA copy's ``label.csv``, an empty archive or pickle).

``mkdocs build --strict`` runs too: a broken link or anchor fails it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from conftest import REPO, run_snakemake

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL = {"bash", "sh", "shell", "console"}
CONFIG_NAME = re.compile(r"^#\s*([\w.-]+\.ya?ml)\b")
SEPARATORS = {"&&", "||", ";", "|", "&"}
REDIRECTS = {">", ">>", "<", ">&", "&>"}
USER_FILES = re.compile(r"(?<![\w/.])/data/")


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    text: str
    configs: dict[str, str] = field(default_factory=dict)  # config files named above it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def fenced_blocks(page: Path) -> list[Block]:
    """The page's fenced code blocks, indented ones (in lists) included, dedented; each shell
    block carries the named config blocks above it."""
    blocks: list[Block] = []
    lines = page.read_text().splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, lang = opening.groups()
        body, i = [], i + 1
        start = i + 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        blocks.append(Block(page, start, lang.lower(), "\n".join(body) + "\n"))
        i += 1
    named: dict[str, str] = {}
    for block in blocks:
        if block.lang == "yaml":
            name = CONFIG_NAME.match(block.text)
            if name:
                named[name.group(1)] = block.text
        elif block.lang in SHELL:
            block.configs = dict(named)
    return blocks


BLOCKS = [block for page in PAGES for block in fenced_blocks(page)]


def commands(block: Block) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments, redirections and
    leading ``VAR=value`` assignments dropped, split at ``&&``, ``;`` and pipes."""
    found = []
    for line in block.text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        tokens = iter(lexer)
        for token in tokens:
            if token in SEPARATORS:
                found.append(command)
                command = []
            elif token in REDIRECTS:
                next(tokens, None)
            else:
                command.append(token)
        found.append(command)
    kept = []
    for command in found:
        while command and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", command[0]):
            command = command[1:]
        if command:
            kept.append(command)
    return kept


def shell_commands(name: str) -> list[tuple[Block, list[str]]]:
    return [
        (block, command)
        for block in BLOCKS
        if block.lang in SHELL
        for command in commands(block)
        if Path(command[0]).name == name
    ]


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def unknown_flags(args: list[str], known: set[str]) -> list[str]:
    """Flags in ``args`` that the parser does not have exactly as written (a word with a space
    is a value, as argparse reads it, and so is a negative number)."""
    return [
        arg.split("=", 1)[0]
        for arg in args
        if arg.startswith("-") and len(arg) > 1 and " " not in arg and not re.match(r"^-\d", arg)
        if arg.split("=", 1)[0] not in known
    ]


def parse(parser: argparse.ArgumentParser, args: list[str]) -> tuple[argparse.Namespace, str]:
    """``parser.parse_args(args)``, and what it printed when it refused them ('' if it did not)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return parser.parse_args(args), ""
        except SystemExit as exc:
            return argparse.Namespace(), (err.getvalue() or "refused") if exc.code else ""


def test_the_docs_show_commands_and_configs():
    """The checks below have something to check: a change to this file's block reader that
    found nothing would pass them all."""
    langs = defaultdict(int)
    for block in BLOCKS:
        langs[block.lang] += 1
    assert langs["bash"] >= 30 and langs["yaml"] >= 10, dict(langs)
    assert len(shell_commands("snakemake")) >= 30
    assert len(shell_commands("thne")) >= 4
    pages = {block.page.name for block in BLOCKS}
    assert {"README.md", "cmu.md", "slurm.md", "your-videos.md"} <= pages


def test_every_thne_command_and_flag_exists():
    from thne.cli import build_parser, subcommands

    parser = build_parser()
    sub = subcommands(parser)
    problems = []
    for block, command in shell_commands("thne"):
        args = command[1:]
        _, refused = parse(parser, args)
        if refused:
            problems.append(f"{block.where}: thne {' '.join(args)}\n{refused}")
        subparser = sub.choices.get(args[0]) if args else None
        if subparser is not None:
            unknown = unknown_flags(args[1:], option_strings(subparser))
            if unknown:
                problems.append(f"{block.where}: thne {args[0]} has no {', '.join(unknown)}")
    assert not problems, "\n".join(problems)


@functools.cache
def snakemake_commands() -> list[tuple[Block, list[str], argparse.Namespace]]:
    """Every snakemake command of the docs, parsed by Snakemake's parser; a command it refuses,
    or with a flag it does not have as written, fails here."""
    from snakemake.cli import get_argument_parser

    parser = get_argument_parser()
    known = option_strings(parser)
    parsed, problems = [], []
    for block, command in shell_commands("snakemake"):
        args = command[1:]
        namespace, refused = parse(parser, args)
        unknown = unknown_flags(args, known)
        if refused or unknown:
            problems.append(f"{block.where}: snakemake {' '.join(args)}\n{refused}{unknown}")
            continue
        parsed.append((block, args, namespace))
    assert not problems, "\n".join(problems)
    return parsed


def test_every_snakemake_flag_exists_and_each_profile_and_config_is_shown():
    problems = []
    for block, _, namespace in snakemake_commands():
        profiles = namespace.profile or []
        for profile in [profiles] if isinstance(profiles, str) else profiles:
            if not (REPO / profile / "config.yaml").is_file():
                problems.append(f"{block.where}: no profile {profile}")
        for config in namespace.configfile or ():
            if str(config) not in block.configs:
                problems.append(
                    f"{block.where}: --configfile {config}, but no yaml block above it on the "
                    f"page starts with '# {config}' (or --configfile comes before the targets, "
                    "and takes them for config files)"
                )
        for target in namespace.targets or ():
            if "{" in target or "<" in target:
                problems.append(f"{block.where}: write the target out, not {target}")
    assert not problems, "\n".join(problems)


def lay_out_user_files(config: dict, folder: Path) -> None:
    """Placeholders for the user's files a config names under ``folder`` (its /data/), as far
    as planning reads them: a raw copy's annotation files, archives, pickles, sequences."""
    from thne.workflow.sources import cmu_dataset

    def place(path: str, directory: bool) -> None:
        target = Path(path)
        if folder not in target.parents:
            return
        if directory:
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()

    for ds, section in config.get("datasets", {}).items():
        source = section.get("source") or {}
        for key, value in source.items():
            if not isinstance(value, str):
                continue
            if key == "raw_dir":
                raw = Path(value)
                layout = source.get("layout")
                name = cmu_dataset({"datasets": {ds: section}}, ds) if layout == "cmu" else ""
                skeleton = {
                    "mmsa": ["label.csv", "Raw/"],
                    "mosi": ["Raw/Labels/OpinionLevelSentiment.csv", "Raw/Transcript/Segmented/"],
                    "mosei": ["Videos/", "Transcript/Segmented/Combined/"],
                }[layout if layout == "mmsa" else name]
                for entry in skeleton:
                    place(str(raw / entry), entry.endswith("/"))
            else:
                place(value, directory=key == "pickles" and source.get("layout") == "mmim")
    for entry in (config.get("predict") or {}).values():
        inputs = entry.get("input", [])
        for value in [inputs] if isinstance(inputs, str) else inputs:
            place(value, directory=not Path(value).suffix)


def merged(configs: list[dict]) -> dict | None:
    """The configs as Snakemake merges several --configfile, or None where two set one key to
    different values (a source, which replaces the shipped one whole, counts as one value)."""
    out: dict = {}

    def put(into: dict, key: str, value) -> bool:
        if isinstance(value, dict) and key != "source":
            into.setdefault(key, {})
            if not isinstance(into[key], dict):
                return False
            return all(put(into[key], k, v) for k, v in value.items())
        if key in into and into[key] != value:
            return False
        into[key] = value
        return True

    for config in configs:
        if not all(put(out, key, value) for key, value in config.items()):
            return None
    return out


def plan(root: Path, config: dict, targets: list[str]) -> str:
    """``snakemake -n targets --configfile docs.yaml`` from a repository root of links, the
    user's files under /data/ laid out in it; Snakemake's error, or '' where it plans."""
    root.mkdir(parents=True)
    user = root / "user-files"
    text = USER_FILES.sub(f"{user}/", yaml.safe_dump(config))
    (root / "docs.yaml").write_text(text)
    lay_out_user_files(yaml.safe_load(text) or {}, user)
    args = ["-n", "--quiet", "rules", "--cores", "1", *targets, "--configfile", "docs.yaml"]
    proc = run_snakemake(root, *args, check=False)
    return "" if proc.returncode == 0 else (proc.stdout[-2000:] + proc.stderr[-4000:])


def test_every_snakemake_target_plans(tmp_path):
    """Each command's targets plan with the config files it names. Snakemake takes seconds to
    start, so the commands that name no config plan in one call, and those that do in another,
    under their configs merged, wherever they agree on every key they share (else in a call of
    their own); that a target's dataset and ``predict:`` entry come from the shipped config or
    the command's own files is checked for each command on its own."""
    from thne.workflow.config import ConfigError, resolve_config

    # (merged configs, targets); the shipped config alone plans the commands that name none
    buckets: list[tuple[dict, dict[str, list[str]]]] = [({}, {})]
    problems = []
    for block, _, namespace in snakemake_commands():
        configs = [yaml.safe_load(block.configs[str(c)]) for c in namespace.configfile or ()]
        try:
            own = resolve_config(copy.deepcopy(merged(configs) or {}), REPO)
        except ConfigError:
            continue  # the snippet test names the key
        for target in namespace.targets or ():
            ds = re.match(r"^(?:results|features|data)/([^/]+)/", target)
            entry = re.match(r"^results/[^/]+/predict/([^/]+)/", target)
            if ds and ds.group(1) not in own["datasets"]:
                problems.append(f"{block.where}: {target}: no dataset {ds.group(1)} in its configs")
            if entry and entry.group(1) not in (own.get("predict") or {}):
                problems.append(f"{block.where}: {target}: no predict entry {entry.group(1)}")
        for i, (union, targets) in enumerate(buckets):
            if bool(i) == bool(configs) and (joined := merged([union, *configs])) is not None:
                buckets[i] = (joined, targets)
                break
        else:
            targets = {}
            buckets.append((merged(configs) or {}, targets))
        for target in namespace.targets or ():
            targets.setdefault(target, []).append(block.where)
    assert not problems, "\n".join(problems)
    assert sum(len(targets) for _, targets in buckets) >= 20
    with ThreadPoolExecutor(max_workers=2) as pool:
        errors = list(
            pool.map(
                lambda i: plan(tmp_path / f"root{i}", buckets[i][0], list(buckets[i][1])),
                range(len(buckets)),
            )
        )
    for (union, targets), error in zip(buckets, errors, strict=True):
        if error:
            # The targets Snakemake names in its error (below its header, which lists them all).
            message = error.rsplit("Building DAG of jobs...", 1)[-1]
            named = [target for target in targets if target in message] or list(targets)
            where = sorted({w for target in named for w in targets[target]})
            problems.append(
                f"{where}: snakemake -n {' '.join(named)} with\n{yaml.safe_dump(union)}{error}"
            )
    assert not problems, "\n\n".join(problems)


def test_every_config_snippet_validates_against_the_schema():
    from thne.workflow.config import ConfigError, resolve_config

    problems = []
    snippets = [block for block in BLOCKS if block.lang == "yaml"]
    for block in snippets:
        try:
            user = yaml.safe_load(block.text)
            assert isinstance(user, dict), "not a mapping"
            resolve_config(copy.deepcopy(user), REPO)
        except (ConfigError, AssertionError, ValueError, yaml.YAMLError) as exc:
            problems.append(f"{block.where}: {exc}")
    assert not problems, "\n".join(problems)


def test_every_make_target_and_script_exists():
    makefile = (REPO / "Makefile").read_text()
    rules = {
        name
        for line in re.findall(r"^([\w .-]+):(?!=)", makefile, re.M)
        for name in line.split()
    }
    problems = []
    for block, command in shell_commands("make"):
        for target in (arg for arg in command[1:] if "=" not in arg and not arg.startswith("-")):
            if target not in rules:
                problems.append(f"{block.where}: make {target}: no such rule in the Makefile")
    for name in ("python", "python3", "bash", "sudo"):
        for block, command in shell_commands(name):
            args = command[1:]
            if name.startswith("python") and args[:1] == ["-m"]:
                if importlib.util.find_spec(args[1]) is None:
                    problems.append(f"{block.where}: python -m {args[1]}: no such module")
            elif args and not (REPO / args[0]).exists():
                problems.append(f"{block.where}: {name} {args[0]}: no such file")
    assert not problems, "\n".join(problems)


def test_every_file_the_docs_name_exists():
    """Scripts named in the prose too (`python benchmarks/x.py`), and documentation pages named
    by the code, config and workflow (`docs/...md`)."""
    problems = []
    for page in PAGES:
        for name in re.findall(r"\bbenchmarks/[\w-]+\.(?:py|sh)\b", page.read_text()):
            if not (REPO / name).is_file():
                problems.append(f"{page.relative_to(REPO)} names {name}, which does not exist")
    sources = [*(REPO / "thne").rglob("*.py"), REPO / "Snakefile", REPO / "config/config.yaml"]
    sources += [*(REPO / "workflow").rglob("*.smk"), *(REPO / "profiles").rglob("*.yaml")]
    for source in sources:
        for name in re.findall(r"\b(?:docs|config)/[\w/.-]+\.md\b", source.read_text()):
            if not (REPO / name).is_file():
                problems.append(f"{source.relative_to(REPO)} names {name}, which does not exist")
    assert not problems, "\n".join(problems)


def test_every_benchmark_is_listed_and_no_figure_is_marked_not_run():
    listed = (REPO / "docs/reference/benchmarks.md").read_text()
    scripts = sorted(p.name for p in (REPO / "benchmarks").iterdir() if p.suffix in (".py", ".sh"))
    assert [s for s in scripts if f"benchmarks/{s}" not in listed] == []
    for page in PAGES:
        assert not re.search(r"not\s+yet\s+run", page.read_text(), re.I), page


def test_the_readme_is_short_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"^[a-z]+://", link)]
    assert len(local) >= 20
    assert [link for link in local if not (REPO / link).exists()] == []
    assert "make docs" in readme and "make docs-serve" in readme


def test_the_paper_reading_is_in_one_place():
    """The readings of the model's equations are in the model's docstring; the docs page
    points there and does not repeat them."""
    import ast

    doc = ast.get_docstring(ast.parse((REPO / "thne/model/thne.py").read_text()))
    page = (REPO / "docs/explanation/paper.md").read_text()
    for reading in ("h_t W_m is the query", "positive pair is part of the denominator"):
        assert reading in doc and reading not in page, reading
    assert "`thne/model/thne.py`" in page


def test_the_site_builds_offline_with_strict_links(tmp_path):
    """``mkdocs build --strict``: every link and anchor resolves; the configuration page holds
    every key of the schema, from config/README.md."""
    from thne.workflow.config import load_schema
    from thne.workflow.docs import rows

    assert importlib.util.find_spec("material"), (
        "MkDocs Material is missing: pip install -e '.[docs]' (make install does)"
    )
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    configuration = (site / "reference/configuration/index.html").read_text()
    schema = load_schema(REPO)
    keys = [key.replace("<", "&lt;").replace(">", "&gt;") for key, _, _ in rows(schema, schema, "")]
    assert len(keys) > 50
    assert [key for key in keys if f"<code>{key}</code>" not in configuration] == []
    assert (site / "reference/cli/index.html").is_file()


def test_a_configfile_before_the_targets_is_caught(tmp_path):
    """Snakemake takes every word after --configfile for a config file: the checks must see
    that a target written there is no target."""
    from snakemake.cli import get_argument_parser

    page = tmp_path / "page.md"
    page.write_text("```bash\nsnakemake --configfile my.yaml results/x\n```\n")
    (block,) = fenced_blocks(page)
    (command,) = commands(block)
    namespace, refused = parse(get_argument_parser(), command[1:])
    assert not refused and not namespace.targets
    assert [str(c) for c in namespace.configfile] == ["my.yaml", "results/x"]
