"""Pages written from the workflow itself, so they cannot say other than what it does:

    python -m thne.workflow.docs config > config/README.md   # every key: type, default, meaning
    python -m thne.workflow.docs stages > docs/stages.md     # every rule: command, step, logs
    python -m thne.workflow.docs cli > docs/reference/cli.md # every subcommand and its flags

The documentation site includes ``config/README.md`` as its configuration reference.
``tests/test_workflow_package.py`` fails when any of the three is out of date.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from thne.workflow.config import load_schema
from thne.workflow.lineage import NO_LINEAGE, STEPS, step_of

HEADER = """\
# Configuration

`config/config.yaml` holds the shipped values: a section per dataset under `datasets` (`demo`,
`mosi`, `mosei`), the model `variants`, and optionally `predict` entries. A file given with
`snakemake --configfile my.yaml` needs only the keys it changes: the workflow fills the rest
from `config/config.yaml`, then from the defaults below, and checks every value against
`workflow/schemas/config.schema.yaml` before any job starts. A `source:` or a grid's `axes:`
given in such a file replaces the shipped one whole.

This page is written from that schema (`python -m thne.workflow.docs config >
config/README.md`); `<name>` stands for a name of your choosing.
"""


def _kind(schema: Mapping) -> str:
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    if "oneOf" in schema:
        text = " or ".join(_kind(s) for s in schema["oneOf"])
    items = schema.get("items")
    if kind == "array" and isinstance(items, Mapping):
        text = f"list of {_kind(items)}"
    bounds = [
        f"{word} {schema[key]}"
        for key, word in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("minItems", "items ≥"),
        )
        if key in schema
    ]
    return ", ".join([text, *bounds]) if bounds else text


def _resolve(schema: Mapping, root: Mapping) -> Mapping:
    ref = schema.get("$ref")
    if ref:
        node: Mapping = root
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node
    return schema


def rows(schema: Mapping, root: Mapping, path: str) -> Iterator[tuple[str, Mapping, bool]]:
    """(key path, schema, required) of every key under ``schema``, depth first."""
    schema = _resolve(schema, root)
    required = set(schema.get("required", ()))
    for name, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        key = f"{path}.{name}" if path else name
        yield key, sub, name in required
        if "properties" in sub or isinstance(sub.get("additionalProperties"), Mapping):
            yield from rows(sub, root, key)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        extra = _resolve(extra, root)
        key = f"{path}.<name>"
        if "properties" in extra:
            yield from rows(extra, root, key)
        elif extra:
            yield key, extra, False


def _cell(text: str) -> str:
    """``text`` as one table cell: one line, pipes escaped, ``<`` not taken for HTML."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def render(schema: Mapping) -> str:
    lines = [HEADER, "| key | value | default | what it is |", "|---|---|---|---|"]
    for key, sub, required in rows(schema, schema, ""):
        default = (
            f"`{json.dumps(sub['default'])}`"
            if "default" in sub
            else ("required" if required else "")
        )
        description = _cell(str(sub.get("description", "")))
        lines.append(f"| `{key}` | {_kind(sub)} | {default} | {description} |")
    return "\n".join(lines) + "\n"


STAGES_HEADER = """\
# Stages

Every rule of the workflow: the `thne` command it runs (`thne/stages/<module>.py`), the
lineage step it carries (`thne/workflow/lineage.py`: what its result depends on; a rule made
with `use rule ... with:` carries the step of the rule it reuses), and where its log and
benchmark go. Rules without a step fetch files, plan or run OpenFace, or list the clips to
score: their results are followed by date. Written by `python -m thne.workflow.docs stages >
docs/stages.md`.
"""
RULE = re.compile(r"^(?:rule|checkpoint|use rule \w+ as) (\w+)", re.M)


def rule_files(root: Path) -> dict[str, dict[str, str]]:
    """Each rule's command, log and benchmark, read from workflow/rules/*.smk (a rule made
    with use rule takes what it does not set from the rule it reuses)."""
    found: dict[str, dict[str, str]] = {}
    included = re.findall(r'^include: "([^"]+)"', (root / "Snakefile").read_text(), re.M)
    for path in (root / name for name in included):
        text = path.read_text()
        starts = [(m.start(), m.group(1)) for m in RULE.finditer(text)]
        if not starts:
            continue
        ends = [start for start, _ in starts[1:]] + [len(text)]
        for (start, name), end in zip(starts, ends, strict=True):
            body = text[start:end]
            entry = {"file": path.name}
            reused = re.match(r"use rule (\w+) as", body)
            if reused:
                entry = {**found[reused.group(1)], "file": path.name}
            for key in ("log", "benchmark"):
                value = re.search(rf"^    {key}:\n\s+\"([^\"]+)\"", body, re.M)
                if value:
                    entry[key] = value.group(1)
            command = re.search(r"thne ([a-z-]+)", body)
            if command:
                entry["command"] = command.group(1)
            found[name] = entry
    return found


def stages_page(root: Path) -> str:
    lines = [
        STAGES_HEADER,
        "| rule | file | command | lineage step | log | benchmark |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in rule_files(root).items():
        step = step_of(name)
        command = entry.get("command")
        if step is not None:
            command = STEPS[step].stage.replace("_", "-")
        cells = [
            f"`{name}`",
            entry["file"],
            f"`thne {command}`" if command else "",
            f"`{step}`" if step else "",
            f"`{entry['log']}`" if "log" in entry else "",
            f"`{entry['benchmark']}`" if "benchmark" in entry else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    gone = sorted(set(NO_LINEAGE) - set(rule_files(root)))
    if gone:
        raise ValueError(f"NO_LINEAGE names rules the workflow no longer has: {', '.join(gone)}")
    return "\n".join(lines) + "\n"


CLI_HEADER = """\
# The `thne` command

Every workflow rule runs one of these subcommands with its inputs, outputs and config values
as flags; nothing here reads the config file. Most users call only `thne predict` by hand
([scoring your own videos](../getting-started/your-videos.md)); the others are here for
running a stage on its own and for reading what a rule does. `thne <subcommand> --help` says
the same. An expected error (bad media, labels or archives, a failed download) prints one line
naming the file and the fix; `THNE_DEBUG=1` shows the traceback.

This page is written from the command's parsers (`python -m thne.workflow.docs cli >
docs/reference/cli.md`).
"""


def _value(action: argparse.Action) -> str:
    """What an argument takes: its choices or its metavar, and how many."""
    if action.nargs == 0:
        return ""
    if action.choices is not None:
        value = " \\| ".join(f"`{c}`" for c in action.choices)
    else:
        value = f"`{action.metavar or action.dest.upper()}`"
    many = {"+": " (one or more)", "*": " (any number)"}.get(str(action.nargs), "")
    if isinstance(action, argparse._AppendAction):
        many = " (repeatable)"
    return value + many


def _default(action: argparse.Action) -> str:
    if action.required:
        return "required"
    default = action.default
    # By identity and emptiness, not ==: a default of 0 equals False and must still show.
    empty = isinstance(default, str | list | tuple) and not default
    if default is None or default is False or default is argparse.SUPPRESS or empty:
        return ""
    if action.nargs == 0:
        return ""
    if isinstance(default, list | tuple):
        default = ",".join(map(str, default))
    return f"`{default}`"


def subcommand_section(name: str, parser: argparse.ArgumentParser) -> list[str]:
    """One subcommand: its help, then a row per argument (positionals first)."""
    formatter = parser._get_formatter()
    lines = [f"## `thne {name}`", "", _cell(parser.description or ""), ""]
    lines += ["| argument | takes | default | what it is |", "|---|---|---|---|"]
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    for action in sorted(actions, key=lambda a: bool(a.option_strings)):
        if action.option_strings:
            names = ", ".join(f"`{o}`" for o in action.option_strings)
            value, default = _value(action), _default(action)
        else:
            names, value = _value(action), "positional"
            default = "required" if action.nargs not in ("*", "?") else ""
        text = formatter._expand_help(action) if action.help else ""
        lines.append(f"| {names} | {value} | {default} | {_cell(text)} |")
    for group in parser._mutually_exclusive_groups:
        flags = ", ".join(f"`{a.option_strings[0]}`" for a in group._group_actions)
        need = "exactly one" if group.required else "at most one"
        lines += ["", f"Of {flags}: {need}."]
    return [*lines, ""]


def cli_page() -> str:
    from thne.cli import build_parser, subcommands

    sub = subcommands(build_parser())
    lines = [CLI_HEADER, "| subcommand | what it does |", "|---|---|"]
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name in sub.choices:
        lines.append(f"| [`thne {name}`](#thne-{name}) | {_cell(helps[name] or '')} |")
    lines.append("")
    for name, subparser in sub.choices.items():
        lines += subcommand_section(name, subparser)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> None:
    page = sys.argv[1] if len(sys.argv) > 1 else "config"
    root = Path(sys.argv[2]) if len(sys.argv) > 2 else Path.cwd()
    if page == "stages":
        sys.stdout.write(stages_page(root))
    elif page == "cli":
        sys.stdout.write(cli_page())
    else:
        sys.stdout.write(render(load_schema(root)))


if __name__ == "__main__":
    main()
