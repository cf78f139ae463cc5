"""The grid search's figure: validation MAE against each hyper-parameter.

One panel per axis of the grids. Each point of a variant's grid is a dot at its value of that
axis (the values as categories, dots jittered sideways so that equal MAEs stay visible), at
its mean validation MAE over the search seeds; a line joins the means at each value, and the
chosen point is a star. A variant has its own colour and a small sideways offset.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from thne.grid import format_value  # noqa: E402
from thne.io import atomic_path  # noqa: E402

JITTER = 0.05
COLUMNS = 3


def plot_grid(
    best: Mapping[str, Mapping], out_path: str | os.PathLike, *, title: str = ""
) -> list[str]:
    """Draw the figure of each variant's ``best.json`` (variant: its content) to ``out_path``
    (PNG); return the panels' titles, one per hyper-parameter."""
    keys: list[str] = []
    values: dict[str, list[str]] = {}
    for b in best.values():
        for key, vs in b["axes"].items():
            if key not in values:
                keys.append(key)
                values[key] = []
            values[key] += [t for t in map(format_value, vs) if t not in values[key]]
    columns = min(COLUMNS, len(keys))
    rows = math.ceil(len(keys) / columns)
    fig, grid = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for extra in grid.flat[len(keys) :]:
        fig.delaxes(extra)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    rng = np.random.default_rng(0)  # the same jitter on every rerun
    width = 0.12
    for ax, key in zip(grid.flat, keys, strict=False):
        at = {v: i for i, v in enumerate(values[key])}
        for k, b in enumerate(best.values()):
            if key not in b["axes"]:
                continue
            colour = colours[k % len(colours)]
            shift = (k - (len(best) - 1) / 2) * width
            x = np.array([at[format_value(p["point"][key])] for p in b["points"]], float) + shift
            y = np.array([p["mae"]["mean"] for p in b["points"]], float)
            ax.scatter(
                x + rng.uniform(-JITTER, JITTER, len(x)),
                y,
                s=10,
                alpha=0.45,
                color=colour,
                linewidths=0,
            )
            levels = sorted(set(x))
            ax.plot(levels, [y[x == level].mean() for level in levels], "-", color=colour, lw=1.5)
            pick = next(p for p in b["points"] if p["name"] == b["name"])
            ax.scatter(
                [at[format_value(pick["point"][key])] + shift],
                [pick["mae"]["mean"]],
                marker="*",
                s=160,
                color=colour,
                edgecolors="black",
                zorder=3,
            )
        ax.set_xticks(range(len(values[key])), values[key])
        ax.set_xlim(-0.5, len(values[key]) - 0.5)
        ax.set_title(key)
        ax.grid(alpha=0.3, axis="y")
    for row in grid:
        row[0].set_ylabel("validation MAE\n(mean over seeds)")
    handles = [
        Line2D([], [], color=colours[k % len(colours)], marker="o", label=f"{v}: points, mean")
        for k, v in enumerate(best)
    ]
    handles.append(
        Line2D(
            [],
            [],
            color="grey",
            marker="*",
            markersize=12,
            markeredgecolor="black",
            linestyle="",
            label="chosen point",
        )
    )
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title or "Validation MAE at each hyper-parameter value (grid search)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    panels = [ax.get_title() for ax in fig.axes]
    plt.close(fig)
    return panels
