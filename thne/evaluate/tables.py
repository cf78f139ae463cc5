"""Markdown tables of our results beside the paper's: Table 3 (``table.md``) and Table 4
(``ablation.md``), in the paper's units: MAE and Corr with 3 decimals, accuracies and F1 in
percent with 2 decimals."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path

import h5py

from thne.evaluate.paper import TABLE3, TABLE3_MMIM, TABLE4, VARIANT_LABELS
from thne.io import atomic_path

HEADER = (
    "| Model | Source | MAE ↓ | Corr ↑ | Acc-7 ↑ | Acc-2 ↑ (has0 / non0) | F1 ↑ (has0 / non0) |\n"
    "|---|---|---|---|---|---|---|\n"
)


def _number(key: str, value: float) -> str:
    return f"{value:.3f}" if key in ("mae", "corr") else f"{100 * value:.2f}"


def _cell(key: str, mean: Mapping[str, float], std: Mapping[str, float] | None) -> str:
    if mean.get(key) is None:
        return "-"
    text = _number(key, mean[key])
    return f"{text} ± {_number(key, std[key])}" if std is not None else text


def format_row(
    name: str,
    source: str,
    mean: Mapping[str, float],
    std: Mapping[str, float] | None = None,
) -> str:
    """One table row; ``std`` given: ``mean ± std`` in each cell."""

    def pair(a: str, b: str) -> str:
        return f"{_cell(a, mean, std)} / {_cell(b, mean, std)}"

    cells = [
        name,
        source,
        _cell("mae", mean, std),
        _cell("corr", mean, std),
        _cell("acc7", mean, std),
        pair("acc2_has0", "acc2_non0"),
        pair("f1_has0", "f1_non0"),
    ]
    return "| " + " | ".join(cells) + " |\n"


def describe_features(
    visual_h5: str | os.PathLike, audio_h5: str | os.PathLike, encoder: str
) -> str:
    """Which features and text encoder the numbers came from, read from the feature files."""

    def one(path: str | os.PathLike) -> str:
        with h5py.File(path, "r", locking=False) as h5:
            extractor = str(h5.attrs["extractor"])
            width = len(h5.attrs["feature_names"])
            config = json.loads(h5.attrs.get("config", "{}"))
        detail = ", ".join(f"{k} {v}" for k, v in sorted(config.items()) if k != "extractor")
        return f"{extractor}, {width} columns" + (f" ({detail})" if detail else "")

    with h5py.File(visual_h5, "r", locking=False) as h5:
        # Set by an import of a published feature set (SDK sequences, pickles).
        feature_set = h5.attrs.get("feature_set")
    head = f"- Feature set: {feature_set}\n" if feature_set else ""
    return (
        head + f"- Visual features: {one(visual_h5)}\n"
        f"- Acoustic features: {one(audio_h5)}\n"
        f"- Text encoder: {encoder}\n"
    )


def _std(summary: Mapping) -> Mapping[str, float] | None:
    """The std over seeds, or None (no ± shown) for a single seed, where it is undefined."""
    return summary["std"] if len(summary["seeds"]) > 1 else None


def _seeds(seeds: list) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


_CAVEAT = (
    "Checkpoints are picked on validation MAE only; the test split is read once, after "
    "training. The paper's features came from its own OpenFace and librosa runs, which cannot "
    "be rebuilt exactly, so equal numbers are not expected; the gap shows how far these "
    "features and this encoder are from the paper's setting.\n"
)


def _head(title: str, features: str) -> str:
    """Title, the features behind the numbers, the caveat, and the table header."""
    return f"# {title}\n\n{features}\n{_CAVEAT}\n{HEADER}"


_MMIM_QUOTE = "paper, Table 3, quoted (from Xie et al., 2024)"

# Columns of the difference tables: (metric, header).
DIFF_COLUMNS = (
    ("mae", "MAE"),
    ("corr", "Corr"),
    ("acc7", "Acc-7"),
    ("acc2_has0", "Acc-2 has0"),
    ("acc2_non0", "Acc-2 non0"),
    ("f1_has0", "F1 has0"),
    ("f1_non0", "F1 non0"),
)


def _signed(key: str, value: float) -> str:
    return f"{value:+.3f}" if key in ("mae", "corr") else f"{100 * value:+.2f}"


def difference_cells(stats: Mapping) -> list[str]:
    """One comparison's cells in the order of ``DIFF_COLUMNS``: the difference, its interval
    in brackets and the reference's share of wins (a ``vs_thne`` entry of ``variants.json``, or
    any result of :func:`thne.evaluate.significance.compare_many`)."""
    cells = []
    for key, _ in DIFF_COLUMNS:
        d = stats[key]
        if d["difference"] is None:
            cells.append("-")
            continue
        if d["interval"] is None:
            cells.append(f"{_signed(key, d['difference'])} [-]")
            continue
        lo, hi = d["interval"]
        cells.append(
            f"{_signed(key, d['difference'])} [{_signed(key, lo)}, {_signed(key, hi)}] "
            f"{100 * d['thne_better']:.0f}%"
        )
    return cells


def differences(result: Mapping) -> str:
    """The variants-against-t-HNE table of a ``variants.json`` with a ``significance`` section,
    with its method written under it; empty without one."""
    sig = result.get("significance")
    rows = [(v, s["vs_thne"]) for v, s in result["variants"].items() if "vs_thne" in s]
    if not sig or not rows:
        return ""
    text = (
        "\n## Differences from t-HNE\n\n"
        "| Variant | " + " | ".join(h for _, h in DIFF_COLUMNS) + " |\n"
        "|---|" + "---|" * len(DIFF_COLUMNS) + "\n"
    )
    for variant, stats in rows:
        cells = difference_cells(stats)
        label = VARIANT_LABELS.get(variant, variant)
        text += f"| {label} (`{variant}`) | " + " | ".join(cells) + " |\n"
    text += (
        f"\nEach cell: the variant minus t-HNE, mean over seeds (MAE and Corr as numbers, the "
        f"others in percentage points); in brackets the {100 * sig['level']:.0f} % interval of "
        f"that same mean-over-seeds difference, from a {sig['method']} ({sig['resamples']:,} "
        f"resamples, seed {sig['seed']}, {resampled(sig)}); then the share of "
        f"resamples in which t-HNE is strictly better (lower MAE, higher for every other "
        f"metric). An interval that excludes 0 marks a difference the test split supports."
        f"{caution_note(sig)}\n"
    )
    return text


def resampled(sig: Mapping) -> str:
    """What a comparison's resamples drew from (a ``significance`` section, or a result of
    :func:`thne.evaluate.significance.compare_variants`): whole test videos, or clips."""
    if sig["unit"] == "video":
        return f"drawing whole videos ({sig['n_videos']} test videos, {sig['n_clips']} clips)"
    videos = f" of {sig['n_videos']} videos" if sig["n_videos"] is not None else ""
    return f"drawing single clips ({sig['n_clips']} test clips{videos})"


def caution_note(sig: Mapping) -> str:
    """The caution of an unreliable comparison (too few test videos) in bold, after a space;
    empty for a reliable one."""
    return "" if sig["reliable"] else f" **{sig['caution']}**"


def constant_runs(summaries: Mapping[str, Mapping]) -> str:
    """A warning under a table for every run whose ``metrics.json`` says its test predictions
    are near-constant (:func:`thne.evaluate.metrics.constant_warning`); empty when none is."""
    lines = [
        f"- `{variant}` seed {run.get('seed')}: {run['warning']}\n"
        for variant, summary in summaries.items()
        for run in summary.get("runs", [])
        if run.get("warning")
    ]
    if not lines:
        return ""
    return (
        "\n**Warning: near-constant runs.** These runs' rows above include a constant "
        "predictor, not a model:\n\n" + "".join(lines)
    )


def table_context(args: argparse.Namespace) -> dict[str, str | None]:
    """What the flags of add_table_flags say a table names beside its numbers: the dataset,
    its features and encoder (described from the feature files), the paper's rows."""
    features = describe_features(args.visual, args.audio, args.encoder)
    return {"dataset": args.dataset, "features": features, "paper": args.paper}


def write_table(
    metrics_json: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dataset: str,
    features: str,
    paper: str | None = None,
    variants_json: str | os.PathLike | None = None,
) -> str:
    """``table.md``: t-HNE's mean ± std over seeds beside the paper's Table 3 row of
    ``paper`` (default ``dataset``; e.g. mosi for a section mosi_sdk), the paper's MMIM row
    (quoted) beside ours when ``variants_json`` has ``mmim``, and every variant's difference
    from t-HNE when it has them."""
    result = json.loads(Path(metrics_json).read_text())
    paper = paper or dataset
    variants = json.loads(Path(variants_json).read_text()) if variants_json else {"variants": {}}
    text = _head(f"t-HNE on {dataset}: test results", features)
    if paper in TABLE3:
        text += format_row("t-HNE", "paper, Table 3 (mean of 5 runs)", TABLE3[paper])
    text += format_row("t-HNE", f"thne, {_seeds(result['seeds'])}", result["mean"], _std(result))
    if paper in TABLE3_MMIM:
        text += format_row("MMIM", _MMIM_QUOTE, TABLE3_MMIM[paper])
    mmim = variants["variants"].get("mmim")
    if mmim is not None:
        text += format_row(
            "MMIM", f"thne `mmim`, {_seeds(mmim['seeds'])}", mmim["mean"], _std(mmim)
        )
    if paper not in TABLE3:
        text += f"\nThe paper reports no results on {paper}.\n"
    # The runs of this table's rows: t-HNE's, and MMIM's where it has a row.
    text += constant_runs({"thne": result, **({"mmim": mmim} if mmim is not None else {})})
    text += differences(variants)
    return _write(out_path, text)


def write_ablation(
    variants_json: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dataset: str,
    features: str,
    paper: str | None = None,
) -> str:
    """``ablation.md``: each variant's mean ± std beside the paper's Table 4 row of ``paper``
    (default ``dataset``), if any."""
    result = json.loads(Path(variants_json).read_text())
    paper_name = paper or dataset
    paper = TABLE4.get(paper_name, {})
    text = _head(f"Ablation on {dataset}: test results by variant", features)
    for variant, summary in result["variants"].items():
        label = VARIANT_LABELS.get(variant, variant)
        if variant in paper:
            text += format_row(label, "paper, Table 4", paper[variant])
        elif variant == "mmim" and dataset in TABLE3_MMIM:
            text += format_row(label, _MMIM_QUOTE, TABLE3_MMIM[dataset])
        text += format_row(
            label, f"thne `{variant}`, {_seeds(summary['seeds'])}", summary["mean"], _std(summary)
        )
    if not paper:
        text += (
            f"\nThe paper's ablation (Table 4) is on mosei only; it has no rows for {paper_name}.\n"
        )
    text += constant_runs(result["variants"])
    text += differences(result)
    return _write(out_path, text)


def _write(out_path: str | os.PathLike, text: str) -> str:
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(text)
    return text
