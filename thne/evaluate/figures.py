"""Figure 3 of the paper: every loss term per epoch, train and valid, mean over seeds."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from thne.io import atomic_path  # noqa: E402

TERMS = ("task", "l_tv", "l_ta", "l_fv", "l_fa", "total")
TITLES = {
    "task": "l_task (MAE, Eq. 8)",
    "l_tv": "l_tv (NCE, Eq. 5)",
    "l_ta": "l_ta (NCE, Eq. 5)",
    "l_fv": "l_fv (CPC, Eq. 7)",
    "l_fa": "l_fa (CPC, Eq. 7)",
    "total": "L (Eq. 9)",
}


def curves(histories: Sequence[pd.DataFrame], term: str, split: str) -> pd.DataFrame:
    """Per epoch: mean, std and number of seeds of ``term`` on ``split``.

    Early stopping ends seeds at different epochs; each epoch averages the seeds that reached
    it. Empty when the term is absent (a variant without that part).
    """
    values = [
        h.loc[h["split"] == split, ["epoch", term]].set_index("epoch")[term]
        for h in histories
        if term in h and h[term].notna().any()
    ]
    if not values:
        return pd.DataFrame(columns=["mean", "std", "n"])
    table = pd.concat(values, axis=1)
    return pd.DataFrame(
        {
            "mean": table.mean(axis=1),
            "std": table.std(axis=1, ddof=1).fillna(0.0),
            "n": table.count(axis=1),
        }
    )


def plot_loss_curves(
    histories: Mapping[str, Sequence[str | os.PathLike]],
    out_path: str | os.PathLike,
    *,
    title: str = "",
) -> None:
    """One panel per loss term; a line per variant and split, mean over seeds, ±1 std band.

    ``histories`` maps a variant's name to its seeds' ``history.tsv`` files.
    """
    frames = {v: [pd.read_csv(p, sep="\t") for p in paths] for v, paths in histories.items()}
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, term in zip(axes.flat, TERMS, strict=True):
        drawn = False
        for k, (variant, hists) in enumerate(frames.items()):
            for split, style in (("train", "-"), ("valid", "--")):
                c = curves(hists, term, split)
                if c.empty:
                    continue
                drawn = True
                colour = colours[k % len(colours)]
                n = int(c["n"].max())
                seeds = f"{n} seed{'s' if n != 1 else ''}"
                ax.plot(
                    c.index,
                    c["mean"],
                    style,
                    color=colour,
                    marker="o",
                    markersize=3,  # a run of one epoch is a point, not a line
                    label=f"{variant} {split} ({seeds})",
                )
                ax.fill_between(
                    c.index, c["mean"] - c["std"], c["mean"] + c["std"], color=colour, alpha=0.15
                )
        ax.set_title(TITLES[term])
        if not drawn:
            ax.text(
                0.5, 0.5, "not in these variants", ha="center", va="center", transform=ax.transAxes
            )
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = next(
        (a.get_legend_handles_labels() for a in axes.flat if a.get_legend_handles_labels()[0]),
        ([], []),
    )
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), frameon=False)
    fig.suptitle(title or "Loss terms per epoch (mean over seeds, band: ±1 std)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
