"""The report's figures beside Figure 3: how sure each difference from t-HNE is, what the models
predict clip by clip, how far the seeds spread, and which epoch each t-HNE seed kept.

Every figure reads finished results only: ``variants.json`` (:func:`~thne.evaluate.aggregate.
aggregate_variants`), the runs' ``predictions.tsv``, and t-HNE's ``history.tsv`` and
``valid_metrics.json``; the manifest gives each clip's video.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from thne.data.manifest import read_manifest  # noqa: E402
from thne.errors import InputError  # noqa: E402
from thne.evaluate.metrics import METRIC_KEYS  # noqa: E402
from thne.evaluate.paper import VARIANT_LABELS  # noqa: E402
from thne.evaluate.significance import LOWER_IS_BETTER, seed_mean_predictions  # noqa: E402
from thne.io import atomic_path  # noqa: E402

# The figures, by the flag of ``thne report-figures`` that names each file.
FIGURES = ("forest", "predicted", "confusion", "seeds", "epochs")
METRIC_LABELS = {
    "mae": "MAE",
    "corr": "Corr",
    "acc7": "Acc-7",
    "acc5": "Acc-5",
    "acc2_has0": "Acc-2 (has 0)",
    "f1_has0": "F1 (has 0)",
    "acc2_non0": "Acc-2 (non 0)",
    "f1_non0": "F1 (non 0)",
}
# The tables print these two as they are and the rest in percent; the figures do the same.
RAW_METRICS = ("mae", "corr")
CLASSES7 = np.arange(-3, 4)


class FigureInputError(InputError):
    """A result file the figures read is not what the stage that writes it writes."""


def _label(variant: str) -> str:
    return VARIANT_LABELS.get(variant, variant)


def _scale(metric: str) -> float:
    return 1.0 if metric in RAW_METRICS else 100.0


def read_variants(path: str | os.PathLike) -> dict[str, dict]:
    """The ``variants`` of a ``variants.json``, each with its ``runs`` (one record per seed)."""
    try:
        variants = json.loads(Path(path).read_text())["variants"]
        for name, summary in variants.items():
            if not summary["runs"] or any("mae" not in r for r in summary["runs"]):
                raise KeyError(f"{name}.runs")
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise FigureInputError(
            f"{path}: not a variants.json of `thne variants` (no {exc} with each seed's "
            "metrics): make it again with `snakemake results/<ds>/variants.json`"
        ) from None
    return variants


def variant_of(path: str | os.PathLike) -> str:
    """A run file's variant: the name of its run folder's parent (runs/<variant>/seed<n>/)."""
    path = Path(path)
    if not path.parent.name.startswith("seed") or path.parent.parent.parent.name != "runs":
        raise FigureInputError(f"{path}: not a run's file (results/<ds>/runs/<variant>/seed<n>/)")
    return path.parent.parent.name


def read_predictions(paths: Sequence[str | os.PathLike]) -> dict[str, pd.DataFrame]:
    """Each variant's seed-mean test predictions (clip_id, label, prediction), by variant in
    the order of ``paths``."""
    by_variant: dict[str, list[str | os.PathLike]] = {}
    for path in paths:
        columns = pd.read_csv(path, sep="\t", nrows=0).columns
        missing = {"clip_id", "label", "prediction"} - set(columns)
        if missing:
            raise FigureInputError(f"{path}: a predictions.tsv without {sorted(missing)}")
        by_variant.setdefault(variant_of(path), []).append(path)
    try:
        return {v: seed_mean_predictions(p) for v, p in by_variant.items()}
    except ValueError as exc:  # seeds of one variant on other clips or labels: names the file
        raise FigureInputError(str(exc)) from None


def plot_forest(
    variants: Mapping[str, Mapping],
    out_path: str | os.PathLike,
    significance: Mapping | None = None,
    heading: str = "Variant − t-HNE on the test split",
    side: str = "variant",
) -> None:
    """Each variant's difference from t-HNE (variant - t-HNE, mean over seeds) per metric, with
    its paired-bootstrap 95 % interval; one panel per metric, zero marked. ``significance``
    (variants.json's) names the bootstrap's unit, and its caution where it has one. The grid
    report draws its tuned − untuned differences with it too (``heading``; ``side``: whom a
    difference on the better side of zero favours)."""
    compared = {v: s["vs_thne"] for v, s in variants.items() if v != "thne" and "vs_thne" in s}
    metrics = [m for m in METRIC_KEYS if any(m in c for c in compared.values())]
    if not metrics:
        _message_figure(
            out_path, "No variant was compared with t-HNE: train more than t-HNE to see this."
        )
        return
    cols = 4
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(15, 0.6 + rows * (0.5 * len(compared) + 1.6)), squeeze=False
    )
    names = list(compared)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        scale = _scale(metric)
        for y, variant in enumerate(names):
            stats = compared[variant].get(metric) or {}
            point, interval = stats.get("difference"), stats.get("interval")
            if point is None:
                continue
            # Dark where the interval leaves out zero: a difference the test clips support.
            sure = interval is not None and (interval[0] > 0 or interval[1] < 0)
            colour = "tab:blue" if sure else "tab:gray"
            if interval is not None:
                ax.plot(np.multiply(interval, scale), [y, y], color=colour, lw=2)
            ax.plot(point * scale, y, "o", color=colour)
        ax.axvline(0, color="black", lw=1)
        ax.set_yticks(range(len(names)), [_label(v) for v in names])
        ax.set_ylim(len(names) - 0.5, -0.5)
        better = "<" if metric in LOWER_IS_BETTER else ">"
        unit = "" if metric in RAW_METRICS else " (points)"
        ax.set_title(f"{METRIC_LABELS[metric]}{unit}\n{better} 0: {side} better", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    significance = significance or {}
    drawn = {"video": "whole videos", "clip": "clips"}.get(significance.get("unit"), "clips")
    title = f"{heading}: mean over seeds, 95 % interval drawing {drawn}"
    if significance.get("n_videos"):
        title += f" ({significance['n_videos']} test videos)"
    if significance.get("reliable") is False:
        title += "\nfew test videos: the intervals are unreliable (see the table's note)"
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    _save(fig, out_path)


def plot_predicted(
    predictions: Mapping[str, pd.DataFrame],
    manifest: str | os.PathLike,
    out_path: str | os.PathLike,
) -> None:
    """Seed-mean prediction against the label of each test clip, a panel per variant (t-HNE
    first), coloured by video, with the identity line."""
    video = {c.clip_id: c.video_id for c in read_manifest(manifest)}
    order = sorted(predictions, key=lambda v: v != "thne")
    cols = min(3, len(order))
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.4 * rows), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, variant in zip(axes.flat, order, strict=False):
        frame = predictions[variant]
        unknown = sorted(set(frame["clip_id"]) - set(video))
        if unknown:
            raise FigureInputError(
                f"{manifest}: no clip {unknown[0]} (of {variant}'s predictions, "
                f"{len(unknown)} such): the runs are of another manifest"
            )
        videos = frame["clip_id"].map(video)
        codes = {v: k for k, v in enumerate(sorted(set(videos)))}
        colours = [cmap(codes[v] % cmap.N) for v in videos]
        ax.plot([-3, 3], [-3, 3], color="black", lw=1, label="prediction = label")
        ax.scatter(frame["label"], frame["prediction"], c=colours, s=22, alpha=0.85)
        mae = float(np.mean(np.abs(frame["prediction"] - frame["label"])))
        ax.set_title(
            f"{_label(variant)}: MAE {mae:.3f}\n{len(frame)} clips, {len(codes)} videos",
            fontsize=10,
        )
        ax.set_xlim(-3.3, 3.3)
        ax.set_ylim(-3.3, 3.3)
        ax.set_aspect("equal")
        ax.set_xlabel("label")
        ax.set_ylabel("prediction (mean over seeds)")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(order) :]:
        ax.set_visible(False)
    fig.suptitle("Test clips: prediction against label (colour: the clip's video)")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    _save(fig, out_path)


def confusion7(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Counts [true class, predicted class] of Acc-7's classes -3..3: round(clip(x, -3, 3)),
    half to even as :mod:`thne.evaluate.metrics` rounds."""
    p = np.round(np.clip(prediction, -3, 3)).astype(int) + 3
    t = np.round(np.clip(label, -3, 3)).astype(int) + 3
    counts = np.zeros((7, 7), dtype=int)
    np.add.at(counts, (t, p), 1)
    return counts


def plot_confusion(frame: pd.DataFrame, out_path: str | os.PathLike) -> None:
    """t-HNE's 7-class confusion matrix, from its seed-mean predictions."""
    counts = confusion7(frame["prediction"].to_numpy(), frame["label"].to_numpy())
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, label="clips", ticks=MaxNLocator(integer=True))
    for (t, p), n in np.ndenumerate(counts):
        if n:
            dark = n > counts.max() / 2
            ax.text(p, t, str(n), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(7), CLASSES7)
    ax.set_yticks(range(7), CLASSES7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc7 = np.trace(counts) / counts.sum()
    ax.set_title(f"t-HNE, 7 classes (mean over seeds): Acc-7 {100 * acc7:.1f} %")
    fig.tight_layout()
    _save(fig, out_path)


def plot_seeds(variants: Mapping[str, Mapping], out_path: str | os.PathLike) -> None:
    """Each seed's test MAE per variant as points, with the mean over seeds."""
    names = list(variants)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 4.6))
    for x, variant in enumerate(names):
        runs = variants[variant]["runs"]
        mae = np.array([r["mae"] for r in runs], dtype=np.float64)
        # Spread the seeds sideways so that equal values stay visible.
        offsets = np.linspace(-0.15, 0.15, len(mae)) if len(mae) > 1 else np.zeros(1)
        ax.plot(x + offsets, mae, "o", color="tab:blue", alpha=0.7)
        ax.hlines(mae.mean(), x - 0.3, x + 0.3, color="black", lw=2)
        ax.text(x + 0.32, mae.mean(), f"{mae.mean():.3f}", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), [_label(v) for v in names], rotation=20, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("test MAE (lower is better)")
    ax.set_title("Test MAE of each seed (points)\nand the mean over seeds (bar)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, out_path)


def read_epochs(
    histories: Sequence[str | os.PathLike], valid_metrics: Sequence[str | os.PathLike]
) -> dict[int, tuple[pd.DataFrame, dict]]:
    """Each seed's validation rows of its ``history.tsv`` and its ``valid_metrics.json``, by
    seed; the two files of a run are paired by their run folder."""
    records: dict[Path, dict] = {}
    for path in valid_metrics:
        record = json.loads(Path(path).read_text())
        missing = {"seed", "best_epoch", "epochs"} - set(record)
        if missing:
            raise FigureInputError(f"{path}: a valid_metrics.json without {sorted(missing)}")
        records[Path(path).parent] = record
    found: dict[int, tuple[pd.DataFrame, dict]] = {}
    for path in histories:
        record = records.get(Path(path).parent)
        if record is None:
            raise FigureInputError(f"{path}: no valid_metrics.json given from its run folder")
        history = pd.read_csv(path, sep="\t")
        missing = {"epoch", "split", "mae"} - set(history.columns)
        if missing:
            raise FigureInputError(f"{path}: a history.tsv without {sorted(missing)}")
        valid = history[history["split"] == "valid"]
        if record["best_epoch"] not in set(valid["epoch"]):
            raise FigureInputError(
                f"{path}: no validation row of epoch {record['best_epoch']}, the best epoch of "
                f"{Path(path).parent / 'valid_metrics.json'}: the two are of different runs"
            )
        found[int(record["seed"])] = (valid, record)
    return dict(sorted(found.items()))


def plot_epochs(
    epochs: Mapping[int, tuple[pd.DataFrame, dict]], out_path: str | os.PathLike
) -> None:
    """Validation MAE per epoch of each seed with its chosen epoch marked, and how many epochs
    each seed trained."""
    fig, (curve, bars) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [2, 1]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (seed, (valid, record)) in enumerate(epochs.items()):
        colour = colours[k % len(colours)]
        best = record["best_epoch"]
        curve.plot(valid["epoch"], valid["mae"], "-o", ms=3, color=colour, label=f"seed {seed}")
        chosen = valid.loc[valid["epoch"] == best, "mae"].iloc[0]
        curve.plot(best, chosen, "*", ms=16, color=colour, markeredgecolor="black")
        bars.barh(k, record["epochs"], color=colour, alpha=0.6)
        bars.plot(best, k, "*", ms=14, color=colour, markeredgecolor="black")
        bars.text(record["epochs"], k, f" {record['epochs']}", va="center", fontsize=9)
    curve.set_xlabel("epoch")
    curve.set_ylabel("validation MAE")
    curve.set_title("t-HNE: validation MAE per epoch (★: the epoch kept)")
    curve.xaxis.set_major_locator(MaxNLocator(integer=True))
    curve.grid(alpha=0.3)
    curve.legend(fontsize=8)
    bars.set_yticks(range(len(epochs)), [f"seed {s}" for s in epochs])
    bars.invert_yaxis()
    bars.set_xlabel("epochs trained (★: the epoch kept)")
    bars.xaxis.set_major_locator(MaxNLocator(integer=True))
    bars.set_title("Epochs each seed trained")
    fig.tight_layout()
    _save(fig, out_path)


def write_report_figures(
    variants_json: str | os.PathLike,
    predictions: Sequence[str | os.PathLike],
    histories: Sequence[str | os.PathLike],
    valid_metrics: Sequence[str | os.PathLike],
    manifest: str | os.PathLike,
    outs: Mapping[str, str | os.PathLike],
) -> None:
    """Every figure of :data:`FIGURES` to its path in ``outs``; ``predictions`` are every run's
    (t-HNE among them), ``histories`` and ``valid_metrics`` t-HNE's runs'."""
    variants = read_variants(variants_json)
    by_variant = read_predictions(predictions)
    if "thne" not in by_variant:
        raise FigureInputError(
            f"no t-HNE run among the predictions ({', '.join(map(str, predictions))})"
        )
    significance = json.loads(Path(variants_json).read_text()).get("significance")
    plot_forest(variants, outs["forest"], significance)
    plot_predicted(by_variant, manifest, outs["predicted"])
    plot_confusion(by_variant["thne"], outs["confusion"])
    plot_seeds(variants, outs["seeds"])
    plot_epochs(read_epochs(histories, valid_metrics), outs["epochs"])


def _message_figure(out_path: str | os.PathLike, text: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 2))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    _save(fig, out_path)


def _save(fig: plt.Figure, out_path: str | os.PathLike) -> None:
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
