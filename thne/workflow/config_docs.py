"""config/README.md, written from the config's schema: every key with its type, default and
description, so the page cannot say other than what the workflow checks.

    python -m thne.workflow.config_docs > config/README.md

``tests/test_workflow_package.py`` fails when the file is out of date.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from thne.workflow.config import load_schema

HEADER = """\
# Configuration

`config/config.yaml` holds the shipped values: a section per dataset under `datasets` (`demo`,
`mosi`, `mosei`), the model `variants`, and optionally `predict` entries. A file given with
`snakemake --configfile my.yaml` needs only the keys it changes: the workflow fills the rest
from `config/config.yaml`, then from the defaults below, and checks every value against
`workflow/schemas/config.schema.yaml` before any job starts. A `source:` or a grid's `axes:`
given in such a file replaces the shipped one whole.

This page is written from that schema (`python -m thne.workflow.config_docs >
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


def render(schema: Mapping) -> str:
    lines = [HEADER, "| key | value | default | what it is |", "|---|---|---|---|"]
    for key, sub, required in rows(schema, schema, ""):
        default = (
            f"`{json.dumps(sub['default'])}`"
            if "default" in sub
            else ("required" if required else "")
        )
        description = " ".join(str(sub.get("description", "")).split())
        lines.append(f"| `{key}` | {_kind(sub)} | {default} | {description} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd()
    sys.stdout.write(render(load_schema(root)))


if __name__ == "__main__":
    main()
