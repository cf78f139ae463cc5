"""A hyper-parameter grid: its points, and the folder name of each.

A grid is a mapping of ``train`` keys to the values to try (``axes``), in the config's order.
Its points are every combination, the first axis varying slowest, so the order is that of
nested loops over the axes as written. A point's folder name lists its values in that order,
``batch_size~32/lr~0.001/alpha~0.05``: one folder level per axis, readable in a file browser
and matched by a path pattern. The same values always give the same name, so a point keeps its
folder (and its finished runs) when another value is added to an axis.

This module imports nothing heavy: every Snakemake parse reads it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

# Train keys that say which runs exist or how a job runs, not what a run computes: in no
# lineage (workflow/rules/common.smk), and never a grid axis.
NOT_COMPUTED = ("seeds", "variants", "threads", "checkpoint_every_s", "jobs_per_gpu")
# Nor is the device an axis: it is where a run trains, not a hyper-parameter.
NOT_SEARCHABLE = (*NOT_COMPUTED, "device")
KEY = re.compile(r"[a-z][a-z0-9_]*")
# A point's folder name: one or more key~value levels. Values are plain words (letters,
# digits, _ . + -): names are paths and shell words in the workflow's commands.
VALUE = re.compile(r"[A-Za-z0-9_.+-]+")
POINT_PATTERN = r"[a-z][a-z0-9_]*~[A-Za-z0-9_.+-]+(?:/[a-z][a-z0-9_]*~[A-Za-z0-9_.+-]+)*"

Value = bool | int | float | str


def format_value(value: Value) -> str:
    """A value as it appears in a point's name: ``0.0005``, ``32``, ``true``. Floats print as
    Python's shortest round-trip form, so 5.0e-4 in the config is ``0.0005`` in the path."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if not VALUE.fullmatch(text):
        raise ValueError(
            f"grid value {value!r}: a point's name takes letters, digits and _ . + - only"
        )
    return text


def point_name(point: Mapping[str, Value]) -> str:
    """The folder name of a point: ``key~value`` per axis, in the axes' order."""
    return "/".join(f"{key}~{format_value(value)}" for key, value in point.items())


def check_axes(
    axes: Mapping[str, Sequence[Value]], train: Mapping[str, Value], where: str
) -> None:
    """Raise ValueError naming ``where`` (the config path of the axes) for an axis that is not
    a key of ``train`` (the dataset's training values), is not searchable, has no values,
    repeats one, or gives a value of another type than the training value's."""
    train_keys = list(train)
    for key, values in axes.items():
        if not KEY.fullmatch(key):
            raise ValueError(f"{where}.{key}: not a training key name")
        if key in NOT_SEARCHABLE:
            raise ValueError(
                f"{where}.{key}: not a hyper-parameter of one run; the axes name train keys "
                f"other than {', '.join(NOT_SEARCHABLE)}"
            )
        if key not in train_keys:
            raise ValueError(
                f"{where}.{key}: no such train key (keys: {', '.join(sorted(train_keys))})"
            )
        if not isinstance(values, list | tuple) or not values:
            raise ValueError(f"{where}.{key}: give a list of one or more values")
        for value in values:
            _check_type(value, train[key], f"{where}.{key}")
        names = [format_value(v) for v in values]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{where}.{key}: value(s) {', '.join(repeated)} given twice")


def _check_type(value: Value, default: Value, where: str) -> None:
    expected = type(default)
    fits = isinstance(value, expected) and isinstance(value, bool) == isinstance(default, bool)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        fits = True  # 1 for 1.0
    if fits or default is None:
        return
    hint = ""
    if isinstance(value, str) and expected is float:
        hint = " (YAML reads a number such as 1e-3 without a dot as text: write 1.0e-3)"
    raise ValueError(
        f"{where}: {value!r} is a {type(value).__name__}, the training value is a "
        f"{expected.__name__}{hint}"
    )


def grid_points(axes: Mapping[str, Sequence[Value]]) -> dict[str, dict[str, Value]]:
    """Every point of the grid, by folder name, in nested-loop order over the axes."""
    keys = list(axes)
    points = {}
    for combination in itertools.product(*(axes[k] for k in keys)):
        point = dict(zip(keys, combination, strict=True))
        points[point_name(point)] = point
    return points
