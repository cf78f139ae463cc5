"""``grid.md``: what the grid search chose, and what the choice did on the test split.

Reading guide. For each variant searched, three tables:

a) every point of its grid, ranked by :data:`thne.evaluate.grid.RULE` on the validation
   split (mean ± std over the search seeds), from its ``best.json``;
b) the chosen values beside the values the untuned runs trained with (this config) and the
   paper's Table 2 (:data:`thne.evaluate.paper.TABLE2`);
c) test metrics: the paper's row, the untuned runs and the tuned runs (the chosen point
   trained with every seed), then the tuned minus untuned difference with its paired
   bootstrap interval (:func:`thne.evaluate.significance.compare_variants`, the untuned runs
   as reference) and, for variants other than t-HNE, the difference from tuned t-HNE
   (``vs_thne`` of the tuned ``variants.json``).

The test split enters only in c), through runs trained after the choice was made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from thne.evaluate.aggregate import check_differences, summarise
from thne.evaluate.grid import RULE, GridError, read_json_object
from thne.evaluate.paper import PAPER_HIDDEN_GRID, TABLE2, TABLE3, TABLE3_MMIM, VARIANT_LABELS
from thne.evaluate.significance import RESAMPLES, SEED, Unit, compare_variants
from thne.evaluate.tables import (
    DIFF_COLUMNS,
    HEADER,
    caution_note,
    difference_cells,
    format_row,
    resampled,
)
from thne.grid import format_value
from thne.io import atomic_path

# How the paper's Table 2 names each train key.
AXIS_LABELS: dict[str, str] = {
    "batch_size": "batch size",
    "lr": "learning rate η",
    "alpha": "α (Eq. 9)",
    "beta": "β (Eq. 9)",
    "visual_hidden": "V-sLSTM hidden dim",
    "acoustic_hidden": "A-sLSTM hidden dim",
    "grad_clip": "gradient clip",
}
_PAPER_ROWS = {
    "thne": (TABLE3, "paper, Table 3 (mean of 5 runs)"),
    "mmim": (TABLE3_MMIM, "paper, Table 3, quoted (from Xie et al., 2024)"),
}


def axis_label(key: str) -> str:
    return f"`{key}` ({AXIS_LABELS[key]})" if key in AXIS_LABELS else f"`{key}`"


def read_best(
    paths: Sequence[str | os.PathLike], variants: Sequence[str], dataset: str
) -> dict[str, dict]:
    """Each variant's ``best.json``, in the order of ``variants``; each file must name one of
    them, of ``dataset``, and each variant must have exactly one."""
    best: dict[str, dict] = {}
    where: dict[str, str] = {}
    for path in paths:
        result = read_json_object(path)
        variant = result.get("variant")
        if variant not in variants:
            raise GridError(f"{path}: a grid of variant {variant!r}, not one of {list(variants)}")
        if variant in best:
            raise GridError(f"{path}: a second best.json of {variant!r} (first: {where[variant]})")
        if result.get("dataset") != dataset:
            raise GridError(f"{path}: a grid of dataset {result.get('dataset')!r}, not {dataset!r}")
        best[variant], where[variant] = result, str(path)
    missing = [v for v in variants if v not in best]
    if missing:
        raise GridError(f"no best.json given for variant(s) {', '.join(missing)}")
    return {v: best[v] for v in variants}


def _seed_of(folder: Path, path: str | os.PathLike) -> int:
    name = folder.name
    if not (name.startswith("seed") and name[4:].isdigit()):
        raise GridError(f"{path}: expected in a seed<n> folder, is in {name!r}")
    return int(name[4:])


def tuned_predictions_by_variant(
    paths: Sequence[str | os.PathLike], tuned: Mapping, variants: Sequence[str]
) -> dict[str, list[str]]:
    """The tuned runs' ``predictions.tsv`` (``<variant>/seed<n>/predictions.tsv``) by variant,
    in the seed order of the tuned ``variants.json``; every seed it lists must be given."""
    given: dict[str, dict[int, str]] = {}
    for path in paths:
        p = Path(path)
        variant = p.parent.parent.name
        if variant not in variants:
            raise GridError(f"{path}: a run of variant {variant!r}, not one of {list(variants)}")
        given.setdefault(variant, {})[_seed_of(p.parent, path)] = str(path)
    out = {}
    for variant in variants:
        if variant not in tuned["variants"]:
            raise GridError(f"the tuned variants.json has no runs of {variant!r}")
        seeds = tuned["variants"][variant]["seeds"]
        have = given.get(variant, {})
        if sorted(have) != sorted(seeds):
            raise GridError(
                f"tuned {variant}: predictions.tsv given for seed(s) {sorted(have)}, its runs in "
                f"variants.json are seed(s) {sorted(seeds)}"
            )
        out[variant] = [have[s] for s in seeds]
    return out


def untuned_runs_by_variant(
    metrics: Sequence[str | os.PathLike],
    predictions: Sequence[str | os.PathLike],
    variants: Sequence[str],
) -> dict[str, tuple[list[dict], list[str]]]:
    """Each variant's untuned runs (their ``metrics.json``, which name variant and seed) and
    the ``predictions.tsv`` beside each, in one order."""
    by_dir = {Path(p).parent: str(p) for p in predictions}
    runs: dict[str, tuple[list[dict], list[str]]] = {v: ([], []) for v in variants}
    used = set()
    for path in metrics:
        run = read_json_object(path)
        variant = run.get("variant")
        if variant not in runs:
            raise GridError(f"{path}: a run of variant {variant!r}, not one of {list(variants)}")
        folder = Path(path).parent
        if folder not in by_dir:
            raise GridError(f"{path}: no predictions.tsv given from its run folder {folder}")
        runs[variant][0].append(run)
        runs[variant][1].append(by_dir[folder])
        used.add(folder)
    unmatched = [p for d, p in by_dir.items() if d not in used]
    if unmatched:
        raise GridError(f"untuned predictions without a metrics.json: {', '.join(unmatched)}")
    missing = [v for v, (r, _) in runs.items() if not r]
    if missing:
        raise GridError(f"no untuned runs given for variant(s) {', '.join(missing)}")
    return runs


def _mean_std(summary: Mapping, digits: int = 4) -> str:
    if summary["mean"] is None:
        return "-"
    return f"{summary['mean']:.{digits}f} ± {summary['std']:.{digits}f}"


def _seeds(seeds: Sequence, noun: str = "seed") -> str:
    return f"{len(seeds)} {noun}{'s' if len(seeds) != 1 else ''} ({', '.join(map(str, seeds))})"


def _grid_line(best: Mapping) -> str:
    axes = best["axes"]
    values = " × ".join(
        f"`{k}` {{{', '.join(format_value(v) for v in vs)}}}" for k, vs in axes.items()
    )
    return (
        f"Grid: {values}: {len(best['points'])} points, each trained with "
        f"{_seeds(best['seeds'], 'search seed')}.\n"
    )


def ranking_table(best: Mapping) -> str:
    """a) Every point, best first, with its validation MAE and Corr over the search seeds."""
    keys = list(best["axes"])
    text = (
        "| Rank | "
        + " | ".join(f"`{k}`" for k in keys)
        + " | valid MAE ↓ | valid Corr ↑ |\n"
        + "|---|"
        + "---|" * (len(keys) + 2)
        + "\n"
    )
    for row in best["points"]:
        rank = f"**{row['rank']} (chosen)**" if row["name"] == best["name"] else str(row["rank"])
        cells = [rank, *(format_value(row["point"][k]) for k in keys)]
        cells += [_mean_std(row["mae"]), _mean_std(row["corr"])]
        text += "| " + " | ".join(cells) + " |\n"
    return text


def choice_table(best: Mapping, untuned: Mapping, paper: str) -> str:
    """b) The chosen values beside the untuned runs' and the paper's Table 2."""
    table2 = TABLE2.get(paper, {})
    text = (
        "| Hyper-parameter | chosen | untuned (this config) | paper Table 2 (t-HNE) |\n"
        "|---|---|---|---|\n"
    )
    notes = []
    for key, values in best["axes"].items():
        paper_value = "-"
        if key in table2:
            paper_value = format_value(table2[key])
            if table2[key] not in values:
                paper_value += " †"
        if (
            paper == "mosei"
            and key == "acoustic_hidden"
            and table2.get(key) not in values
            and table2.get(key) not in PAPER_HIDDEN_GRID
        ):
            notes.append(
                f"The paper's Table 2 gives A-sLSTM hidden dim {table2[key]} for MOSEI, outside "
                f"its own search grid for hidden dims {{{', '.join(map(str, PAPER_HIDDEN_GRID))}}}"
                " (section 4.3)."
            )
        text += (
            f"| {axis_label(key)} | {format_value(best['point'][key])} | "
            f"{format_value(untuned[key])} | {paper_value} |\n"
        )
    if any("†" in line for line in text.splitlines()[2:]):
        notes.insert(0, "† not among this grid's values for that hyper-parameter.")
    if not table2:
        notes.append(f"The paper's Table 2 has no values for {paper}.")
    return text + "".join(f"\n{n}\n" for n in notes)


def results_table(
    variant: str,
    paper: str,
    untuned_runs: Sequence[Mapping],
    tuned: Mapping,
    comparison: Mapping,
) -> str:
    """c) Test metrics of the paper, the untuned and the tuned runs, and their differences;
    ``comparison`` is :func:`~thne.evaluate.significance.compare_variants` of ``tuned``
    against ``untuned``."""
    label = VARIANT_LABELS.get(variant, variant)
    untuned = summarise(list(untuned_runs))
    summary = tuned["variants"][variant]

    def std(s: Mapping) -> Mapping | None:
        return s["std"] if len(s["seeds"]) > 1 else None

    text = HEADER
    table, source = _PAPER_ROWS.get(variant, ({}, ""))
    if paper in table:
        text += format_row(label, source, table[paper])
    text += format_row(
        label, f"untuned (this config), {_seeds(untuned['seeds'])}", untuned["mean"], std(untuned)
    )
    text += format_row(
        label, f"tuned (chosen point), {_seeds(summary['seeds'])}", summary["mean"], std(summary)
    )
    text += (
        "\n| Difference | " + " | ".join(h for _, h in DIFF_COLUMNS) + " |\n"
        "|---|" + "---|" * len(DIFF_COLUMNS) + "\n"
    )
    text += (
        f"| tuned − untuned {label} | "
        + " | ".join(difference_cells(comparison["variants"]["tuned"]))
        + " |\n"
    )
    vs_thne = summary.get("vs_thne")
    if variant != "thne" and vs_thne is not None:
        text += "| tuned − tuned t-HNE | " + " | ".join(difference_cells(vs_thne)) + " |\n"
    sig = tuned.get("significance") or {}
    text += (
        "\nEach difference is a mean over seeds (MAE and Corr as numbers, the others in "
        "percentage points), in brackets its 95 % interval from a paired bootstrap, then the "
        "share of resamples in which the second model (untuned, or tuned t-HNE) is strictly "
        f"better. Tuned − untuned: {comparison['resamples']:,} resamples (seed "
        f"{comparison['seed']}) {resampled(comparison)} with replacement, the untuned runs as "
        f"reference.{caution_note(comparison)}"
    )
    if variant != "thne" and vs_thne is None:
        text += " The tuned variants.json has no difference from tuned t-HNE for this variant."
    elif variant != "thne" and sig:
        text += (
            f" The difference from tuned t-HNE is that of the tuned variants.json "
            f"({sig['resamples']:,} resamples, seed {sig['seed']}, {resampled(sig)})."
        )
    return text + "\n"


def write_grid_report(
    out_path: str | os.PathLike,
    *,
    dataset: str,
    paper: str,
    variants: Sequence[str],
    best: Sequence[str | os.PathLike],
    tuned_variants: str | os.PathLike,
    tuned_predictions: Sequence[str | os.PathLike],
    untuned_runs: Sequence[str | os.PathLike],
    untuned_predictions: Sequence[str | os.PathLike],
    untuned_values: Mapping[str, Mapping],
    unit: Unit = "video",
    videos: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[str, dict[str, dict], dict[str, dict]]:
    """Write ``grid.md``; return its text, each variant's ``best.json`` and each variant's
    tuned − untuned comparison (:func:`~thne.evaluate.significance.compare_variants`' result).
    The tuned runs are compared with the untuned by a bootstrap of ``unit`` (``videos``: clip
    id: video id)."""
    if not variants:
        raise GridError("--variants: name one or more variants")
    chosen = read_best(best, variants, dataset)
    tuned = read_json_object(tuned_variants)
    tuned_preds = tuned_predictions_by_variant(tuned_predictions, tuned, variants)
    untuned = untuned_runs_by_variant(untuned_runs, untuned_predictions, variants)
    for variant in variants:
        values = untuned_values.get(variant)
        if not isinstance(values, Mapping):
            raise GridError(f"--untuned-values: no values given for variant {variant!r}")
        lacking = [k for k in chosen[variant]["axes"] if k not in values]
        if lacking:
            raise GridError(f"--untuned-values: {variant} lacks {', '.join(lacking)}")
    rules = {b.get("rule") for b in chosen.values()}
    if rules != {RULE}:
        raise GridError("a best.json chose by another rule than this thne's: rerun grid-select")

    text = (
        f"# Hyper-parameter grid search on {dataset}\n\n"
        "Each variant below was trained at every point of its hyper-parameter grid (the "
        "paper's search, section 4.3) with each search seed. The choice is made on the "
        f"validation split only (each run's best validation epoch). {RULE} The test split is "
        "read only after the choice: the chosen point is trained again with every seed "
        "(the tuned runs), and those runs are compared with the untuned runs, which trained "
        "with this config's values.\n"
    )
    if paper not in TABLE2 and paper not in TABLE3:
        text += f"\nThe paper reports no hyper-parameters or results on {paper}.\n"
    comparisons: dict[str, dict] = {}
    for variant in variants:
        b = chosen[variant]
        label = VARIANT_LABELS.get(variant, variant)
        runs, untuned_paths = untuned[variant]
        try:
            comparison = compare_variants(
                {"untuned": untuned_paths, "tuned": tuned_preds[variant]},
                reference="untuned",
                unit=unit,
                videos=videos,
                resamples=resamples,
                seed=seed,
            )
        except ValueError as exc:  # other clips or labels: the runs are not comparable
            raise GridError(f"{variant}, tuned against untuned runs: {exc}") from None
        try:
            check_differences(
                comparison["variants"]["tuned"],
                tuned["variants"][variant]["mean"],
                summarise(runs)["mean"],
                f"{variant}, tuned − untuned",
            )
        except ValueError as exc:
            raise GridError(str(exc)) from None
        comparisons[variant] = comparison
        text += (
            f"\n## {label} (`{variant}`)\n\n{_grid_line(b)}\n"
            f"Chosen: `{b['name']}` (validation MAE {_mean_std(b['valid']['mae'])}).\n\n"
            "### Every point on the validation split, best first\n\n"
            f"{ranking_table(b)}\n"
            "### The chosen values\n\n"
            f"{choice_table(b, untuned_values[variant], paper)}\n"
            "### Test results\n\n"
            f"{results_table(variant, paper, runs, tuned, comparison)}"
        )
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(text)
    return text, chosen, comparisons
