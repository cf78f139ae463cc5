"""A user's config, resolved once: what every rule, lineage and run setting reads.

``resolve_config(user, root)`` takes the config Snakemake loaded from ``--configfile`` and
fills, in this order:

1. the shipped ``config/config.yaml`` under the user's values (``fill_defaults``), where a
   ``source:`` or grid ``axes:`` the user gives replaces the shipped one whole;
2. each ``base: <name>`` section from its base (``inherit_bases``);
3. the shipped variants (:data:`thne.variants.SHIPPED_VARIANTS`) beside the user's;
4. the schema's defaults (``workflow/schemas/config.schema.yaml``), the only place a default
   of a config key is written, and its checks;
5. the checks the schema cannot say: variant names, grids (every point checked like a
   ``train:`` section), and each ``sdk`` source's sequences.

Every error is a :class:`ConfigError` whose message starts with the key's path.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from thne.grid import check_axes, grid_points
from thne.variants import LOSS_WEIGHTS, SHIPPED_VARIANTS, with_shipped

SHIPPED = "config/config.yaml"
SCHEMA = "workflow/schemas/config.schema.yaml"
# Sections a user's config replaces as a whole: a dataset's source, and a grid's axes. Merged
# key by key, the shipped raw_dir would sit beside a user's url or archive and win over it, and
# the shipped axes would be searched beside the user's.
WHOLE_SECTIONS = ("source", "axes")
# An sdk source's sequences, each a URL or a local .csd.
SDK_ROLES = ("labels", "words", "acoustic", "visual")


class ConfigError(ValueError):
    """A config that cannot run; the message names the key."""


def resolve_config(user: dict, root: str | Path) -> dict:
    """``user`` (Snakemake's ``config``) resolved in place, as the module docstring says;
    ``root`` is the repository root, where the shipped config and the schema are."""
    root = Path(root)
    fill_defaults(user, yaml.safe_load((root / SHIPPED).read_text()))
    inherit_bases(user["datasets"])
    check_shipped_variants(user.get("variants") or {})
    user["variants"] = with_shipped(user.get("variants"))
    validate(user, load_schema(root))
    for ds, section in user["datasets"].items():
        check_variant_names(ds, section["train"]["variants"], user["variants"])
        if section.get("grid") is not None:
            check_grid(ds, section, user["variants"], load_schema(root))
        if section["source"]["layout"] == "sdk":
            fill_sdk_sources(ds, section)
    return user


def fill_defaults(user: dict, defaults: Mapping) -> dict:
    """Deep-merge ``defaults`` under the user's values, in place, but for WHOLE_SECTIONS.

    The Snakefile has no configfile: directive, which would deep-merge the shipped config into
    the user's first, so a ``source:`` the user gives replaces the shipped one whole, and a
    user's file stays as short as the keys it changes (e.g. only datasets.mosi.train.seeds).
    """
    for key, value in defaults.items():
        if key not in user:
            user[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(user[key], dict) and key not in WHOLE_SECTIONS:
            fill_defaults(user[key], value)
    return user


def inherit_bases(datasets: dict) -> dict:
    """Fill each section with ``base: <name>`` from that section, in place: ``mosi_sdk`` with
    ``base: mosi`` keeps mosi's hyper-parameters, folds and paper rows. The base's source is
    taken only where the layout is the same; another layout has other source keys.
    """
    for name, section in datasets.items():
        base = section.get("base")
        if base is None:
            continue
        if base not in datasets or base == name or "base" in datasets[base]:
            raise ConfigError(
                f"datasets.{name}.base: {base!r} must name another section without a base "
                f"(sections: {', '.join(sorted(datasets))})"
            )
        parent = copy.deepcopy(datasets[base])
        layout = section.get("source", {}).get("layout")
        if layout not in (None, parent["source"]["layout"]):
            parent["source"] = {"dataset": parent["source"].get("dataset", base)}
        fill_defaults(section, parent)
    return datasets


def check_shipped_variants(variants: Mapping[str, Any]) -> None:
    """A shipped variant's name means its switches (``thne train --variant``, the tables): a
    config may change its loss weights only."""
    for name, entry in variants.items():
        if name not in SHIPPED_VARIANTS:
            continue
        changed = sorted(
            key
            for key, value in (entry or {}).items()
            if key not in LOSS_WEIGHTS and SHIPPED_VARIANTS[name].get(key) != value
        )
        if changed:
            raise ConfigError(
                f"variants.{name}: a shipped variant's entry may change its loss weights "
                f"({', '.join(LOSS_WEIGHTS)}) only, not {', '.join(changed)}; give the variant "
                "a name of its own"
            )


@functools.cache
def _schema(path: Path, mtime_ns: int) -> dict:
    return yaml.safe_load(path.read_text())


def load_schema(root: str | Path) -> dict:
    """The config's JSON schema (read once per file version)."""
    path = Path(root) / SCHEMA
    return _schema(path, path.stat().st_mtime_ns)


def validate(config: dict, schema: Mapping, where: str = "config") -> None:
    """Check ``config`` against ``schema``, filling the schema's defaults in place as
    Snakemake's ``validate`` does (a missing key takes its ``default:``, appended in the
    schema's order). Raises ConfigError naming the first wrong key: ``config.datasets.demo.
    train.batch_size: 'large' is not of type 'integer'``."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    plain = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        for name, subschema in properties.items():
            if "default" in subschema and isinstance(instance, dict):
                instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from plain(validator, properties, instance, schema)

    filling = validators.extend(Draft202012Validator, {"properties": set_defaults})
    try:
        filling(schema).validate(config)
    except ValidationError as error:
        path = ".".join([where, *map(str, error.absolute_path)])
        raise ConfigError(f"{path}: {error.message}") from None


def check_variant_names(ds: str, names: list[str], variants: Mapping) -> None:
    unknown = sorted(set(names) - set(variants))
    if unknown:
        raise ConfigError(
            f"datasets.{ds}.train.variants names {', '.join(unknown)}, not defined under "
            f"variants: (defined: {', '.join(variants)})"
        )


def check_grid(ds: str, section: Mapping, variants: Mapping, schema: Mapping) -> None:
    """A grid's axes, variants and every point: a point is a ``train:`` section with the
    point's values, checked against the schema like one before any job starts (a batch size
    of 0 would otherwise train the points before it, then end in a traceback)."""
    where = f"datasets.{ds}.grid"
    grid, train = section["grid"], section["train"]
    try:
        check_axes(grid["axes"], train, f"{where}.axes")
    except ValueError as error:
        raise ConfigError(str(error)) from None
    unknown = sorted(set(grid["variants"]) - set(variants))
    if unknown:
        raise ConfigError(
            f"{where}.variants names {', '.join(unknown)}, not defined under variants:"
        )
    if "thne" not in grid["variants"]:
        raise ConfigError(
            f"{where}.variants: list thne too; every tuned variant is compared with tuned "
            "t-HNE (results/{ds}/tuned/variants.json)"
        )
    # The schema checks each train key alone, so checking each axis value checks every point.
    train_schema = schema["$defs"]["dataset"]["properties"]["train"]
    for key, values in grid["axes"].items():
        for value in values:
            try:
                validate({**train, key: value}, train_schema, where=f"{where}.axes")
            except ConfigError as error:
                raise ConfigError(f"{error}, a value of every point that has it") from None


def fill_sdk_sources(ds: str, section: dict) -> None:
    """An sdk section's sequences as configured (a URL or a local .csd), else the SDK's
    default for its dataset; in place, so every rule (downloads too) sees the same."""
    from thne.data.sdk import DEFAULT_SEQUENCES

    source = section["source"]
    defaults = DEFAULT_SEQUENCES.get(source.get("dataset") or section.get("base") or ds, {})
    for role in SDK_ROLES:
        if not source.get(role):
            if role not in defaults:
                raise ConfigError(
                    f"datasets.{ds}.source.{role}: give the {role} sequence (.csd), a URL or a "
                    "local path"
                )
            source[role] = defaults[role]


def dataset_view(config: Mapping, ds: str) -> str:
    """A dataset's section and the variants it trains, as resolved, in YAML: the report's
    configuration page."""
    variants = config["datasets"][ds]["train"]["variants"]
    view = {
        "dataset": {ds: config["datasets"][ds]},
        "variants": {v: config["variants"][v] for v in variants},
    }
    return yaml.safe_dump(view, sort_keys=False)


def grids(config: Mapping) -> dict[str, dict[str, dict]]:
    """Each dataset's grid points by folder name, in the grid's order (datasets with a grid)."""
    return {
        ds: grid_points(section["grid"]["axes"])
        for ds, section in config["datasets"].items()
        if section.get("grid") is not None
    }


def is_imported(config: Mapping, ds: str) -> bool:
    """Whether a dataset is a published feature set (imported), not media (extracted)."""
    from thne.data.feature_import import IMPORT_LAYOUTS

    return config["datasets"][ds]["source"]["layout"] in IMPORT_LAYOUTS
