"""The grid search's choice: the point whose runs did best on the validation split.

Reading guide. The workflow trains every point of a grid (:mod:`thne.grid`) with each search
seed into ``<grid dir>/<point name>/seed<n>/``. :func:`read_grid` checks that the runs given
are exactly the grid's points times the seeds and reads each run's ``valid_metrics.json``
(the best validation epoch's metrics) and nothing else: a run's ``predictions.tsv`` holds
*test* predictions, and a choice that saw them would make the tuned runs' test numbers
optimistic. :func:`rank_points` summarises each point over the seeds and orders the points by
:data:`RULE`; :func:`select` writes the ranking to ``best.json``.

Only the standard library is imported, so ``thne grid-select`` starts fast.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thne.errors import InputError
from thne.grid import grid_points
from thne.io import write_json

RULE = (
    "The chosen point has the lowest mean validation MAE over the search seeds; points whose "
    "means are equal when rounded to 6 decimals are ordered by the higher mean validation Corr "
    "(a Corr that is missing or NaN on any seed counts as the worst), then by the earlier "
    "point in the grid's order."
)
VALID_METRICS = "valid_metrics.json"
DECIMALS = 6
# How many names an error lists before it counts the rest.
_SHOWN = 10


class GridError(InputError):
    """A grid's runs that do not fit its points and seeds, or a run file that cannot be read."""


def _listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def check_axes_json(axes: Any) -> dict[str, list]:
    """The axes as ``thne grid-select --axes`` gives them: an object of non-empty lists."""
    if not isinstance(axes, dict) or not axes:
        raise GridError(f"--axes: give a JSON object of axis: [values], got {axes!r}")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"--axes: axis {key!r} needs a list of one or more values")
    return axes


def read_grid(
    runs: Sequence[str | os.PathLike],
    grid_dir: str | os.PathLike,
    axes: Mapping[str, Sequence],
    seeds: Sequence[int],
    variant: str,
) -> dict[str, dict[int, dict]]:
    """Each point's validation metrics by seed (points in grid order), from ``runs``.

    ``runs`` must be exactly ``<grid_dir>/<point name>/seed<n>/valid_metrics.json`` for every
    point of ``axes`` and every seed; any other file name is refused before a file is opened.
    """
    refused = [str(p) for p in runs if Path(p).name != VALID_METRICS]
    if refused:
        raise GridError(
            f"grid-select reads validation metrics only ({VALID_METRICS}); refused: "
            f"{_listed(refused)}"
        )
    if not seeds or len(set(seeds)) != len(seeds):
        raise GridError(f"--seeds: give one or more distinct search seeds, got {list(seeds)}")
    try:
        points = grid_points(axes)
    except ValueError as exc:
        raise GridError(f"--axes: {exc}") from None
    if len(points) != math.prod(len(v) for v in axes.values()):
        raise GridError("--axes: an axis names the same value twice")
    expected: dict[str, tuple[str, int]] = {}
    for name in points:
        for seed in seeds:
            path = os.path.normpath(os.path.join(grid_dir, name, f"seed{seed}", VALID_METRICS))
            expected[path] = (name, seed)
    given: dict[str, str] = {}
    repeated = []
    for p in runs:
        key = os.path.normpath(p)
        if key in given:
            repeated.append(str(p))
        given[key] = str(p)
    if repeated:
        raise GridError(f"run(s) given twice: {_listed(repeated)}")
    extra = [given[k] for k in given if k not in expected]
    missing = [k for k in expected if k not in given]
    where = f"{len(points)} point(s) of --axes under {grid_dir} x seeds {_seed_list(seeds)}"
    if extra:
        raise GridError(f"run(s) not in the grid ({where}): {_listed(extra)}")
    if missing:
        raise GridError(
            f"no run given for {len(missing)} point x seed of {where}: {_listed(missing)}"
        )
    by_point: dict[str, dict[int, dict]] = {name: {} for name in points}
    for key, (name, seed) in expected.items():
        by_point[name][seed] = _read_run(given[key], seed, variant)
    return by_point


def _seed_list(seeds: Sequence[int]) -> str:
    return ",".join(str(s) for s in seeds)


def read_json_object(path: str | os.PathLike, missing: str = "no such file") -> dict:
    """A JSON object from ``path``; a missing, unreadable or other file is a GridError."""
    try:
        result = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise GridError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GridError(f"{path}: cannot be read as JSON ({exc})") from None
    if not isinstance(result, dict):
        raise GridError(f"{path}: not a JSON object")
    return result


def _read_run(path: str, seed: int, variant: str) -> dict:
    run = read_json_object(path, "no such file (has that run finished?)")
    mae = run.get("mae")
    if isinstance(mae, bool) or not isinstance(mae, int | float) or not math.isfinite(mae):
        raise GridError(f"{path}: validation 'mae' is {mae!r}, not a finite number")
    if run.get("seed") not in (None, seed):
        raise GridError(f"{path}: written by seed {run['seed']}, its folder says seed{seed}")
    if run.get("variant") not in (None, variant):
        raise GridError(f"{path}: written by variant {run['variant']!r}, not {variant!r}")
    return run


def _corr(run: Mapping) -> float | None:
    """A run's validation Corr, None where it is undefined (constant predictions)."""
    value = run.get("corr")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def summary(values: Sequence[float | None]) -> dict[str, float | None]:
    """Mean and sample std (ddof 1; 0 for one value), rounded; both None if any is None."""
    if any(v is None for v in values):
        return {"mean": None, "std": None}
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": round(mean, DECIMALS), "std": round(std, DECIMALS)}


def rank_points(
    by_point: Mapping[str, Mapping[int, Mapping]], points: Mapping[str, Mapping]
) -> list[dict]:
    """Every point summarised over its seeds, best first by :data:`RULE`; ``by_point`` and
    ``points`` in grid order."""
    rows = []
    for order, (name, runs) in enumerate(by_point.items()):
        seeds = [
            {
                "seed": seed,
                "mae": run["mae"],
                "corr": _corr(run),
                "best_epoch": run.get("best_epoch"),
            }
            for seed, run in runs.items()
        ]
        mae = summary([s["mae"] for s in seeds])
        corr = summary([s["corr"] for s in seeds])
        rows.append((order, name, mae, corr, seeds))

    def key(row: tuple) -> tuple:
        order, _, mae, corr, _ = row
        worst = corr["mean"] is None
        # summary() rounds already; rounded here too so the rule does not hang on that.
        return (round(mae["mean"], DECIMALS), worst, -(corr["mean"] or 0.0), order)

    return [
        {
            "rank": rank,
            "name": name,
            "point": dict(points[name]),
            "mae": mae,
            "corr": corr,
            "seeds": seeds,
        }
        for rank, (_, name, mae, corr, seeds) in enumerate(sorted(rows, key=key), start=1)
    ]


def select(
    runs: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    axes: Mapping[str, Sequence],
    seeds: Sequence[int],
    grid_dir: str | os.PathLike,
    dataset: str,
    variant: str,
) -> dict:
    """``best.json``: the chosen point by :data:`RULE` and every point ranked, from the
    runs' validation metrics only."""
    axes = check_axes_json(axes)
    by_point = read_grid(runs, grid_dir, axes, seeds, variant)
    ranked = rank_points(by_point, grid_points(axes))
    best = ranked[0]
    result = {
        "dataset": dataset,
        "variant": variant,
        "rule": RULE,
        "seeds": list(seeds),
        "axes": {k: list(v) for k, v in axes.items()},
        "name": best["name"],
        "point": best["point"],
        "valid": {"mae": best["mae"], "corr": best["corr"]},
        "points": ranked,
    }
    write_json(out_path, result)
    return result
