"""Evaluation of a run's test predictions, and aggregation of runs over seeds."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from thne.data.manifest import read_manifest
from thne.evaluate.metrics import METRIC_KEYS, constant_warning, regression_metrics, spread_share
from thne.evaluate.significance import RESAMPLES, SEED, Unit, compare_variants
from thne.io import write_json


def evaluate_predictions(
    predictions: str | os.PathLike, out_path: str | os.PathLike, **info
) -> dict:
    """Test metrics of one run from its ``predictions.tsv``, with ``info``, the clip count, the
    predictions' spread (their std over the labels') and, for a near-constant predictor, a
    ``warning`` (:func:`~thne.evaluate.metrics.constant_warning`): the record written to
    ``out_path``, returned."""
    frame = pd.read_csv(predictions, sep="\t", dtype={"clip_id": str})
    if frame.empty:
        raise ValueError(f"{predictions}: no predictions")
    pred, label = frame["prediction"].to_numpy(), frame["label"].to_numpy()
    metrics = regression_metrics(pred, label)
    record = {
        **info,
        "n_clips": len(frame),
        **metrics,
        "spread": _finite(round(spread_share(pred, label), 6)),
    }
    warning = constant_warning(pred, label)
    if warning is not None:
        record["warning"] = warning
    write_json(out_path, record)
    return record


def _finite(value: float) -> float | None:
    """``value``, or None where it is NaN (JSON has no NaN)."""
    return value if np.isfinite(value) else None


def summarise(runs: list[dict]) -> dict:
    """Seeds, mean and sample standard deviation of each metric over runs (one per seed)."""
    if not runs:
        raise ValueError("no runs to aggregate")
    for run in runs:
        missing = [k for k in METRIC_KEYS if k not in run]
        if missing:
            raise ValueError(f"run {run.get('variant')} seed {run.get('seed')} lacks {missing}")
    table = np.array([[r[k] for k in METRIC_KEYS] for r in runs], dtype=np.float64)
    std = table.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(METRIC_KEYS))
    return {
        "seeds": [r.get("seed") for r in runs],
        "mean": dict(zip(METRIC_KEYS, table.mean(axis=0).round(6).tolist(), strict=True)),
        "std": dict(zip(METRIC_KEYS, std.round(6).tolist(), strict=True)),
    }


def _read_runs(paths: Iterable[str | os.PathLike]) -> list[dict]:
    return [json.loads(Path(p).read_text()) for p in paths]


def aggregate_runs(
    run_metrics: Iterable[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    dataset: str,
    variant: str,
) -> dict:
    """Mean and sample standard deviation of each metric over the runs (seeds) of a variant."""
    runs = _read_runs(run_metrics)
    result = {"dataset": dataset, "variant": variant, **summarise(runs), "runs": runs}
    write_json(out_path, result)
    return result


def aggregate_variants(
    run_metrics: Iterable[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    dataset: str,
    variants: Sequence[str],
    predictions: Iterable[str | os.PathLike] = (),
    unit: Unit = "video",
    videos: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict:
    """``variants.json``: each variant's runs summarised, in the order of ``variants``.

    Each run's ``metrics.json`` names its variant; a variant of ``variants`` with no run, or a
    run of a variant not in ``variants``, is an error. Given the runs' ``predictions.tsv``
    files (each in its run's directory) and a ``thne`` variant, every other variant also gets
    ``vs_thne``: per metric the difference of the means over seeds, its paired-bootstrap 95 %
    interval and t-HNE's share of wins (:mod:`thne.evaluate.significance`; resampling
    ``unit``, whole videos by default, which needs ``videos``, clip id: video id), computed
    from the predictions and checked against the runs' metrics.
    """
    paths = list(run_metrics)
    by_variant: dict[str, list[dict]] = {v: [] for v in variants}
    run_dirs: dict[str, list[Path]] = {v: [] for v in variants}
    for path, run in zip(paths, _read_runs(paths), strict=True):
        if run.get("variant") not in by_variant:
            raise ValueError(f"{path}: variant {run.get('variant')!r} is not one of {variants}")
        by_variant[run["variant"]].append(run)
        run_dirs[run["variant"]].append(Path(path).parent)
    missing = [v for v, runs in by_variant.items() if not runs]
    if missing:
        raise ValueError(f"no runs for variant(s) {', '.join(missing)}")
    summaries = {v: {**summarise(runs), "runs": runs} for v, runs in by_variant.items()}
    result = {"dataset": dataset, "variants": summaries}
    given = {Path(p).parent: Path(p) for p in predictions}
    if given and "thne" in by_variant and len(by_variant) > 1:
        lacking = [str(d) for dirs in run_dirs.values() for d in dirs if d not in given]
        if lacking:
            raise ValueError(f"no predictions.tsv given for the run(s) in {', '.join(lacking)}")
        comparison = compare_variants(
            {v: [given[d] for d in dirs] for v, dirs in run_dirs.items()},
            unit=unit,
            videos=videos,
            resamples=resamples,
            seed=seed,
        )
        for variant, stats in comparison.pop("variants").items():
            check_differences(stats, summaries[variant]["mean"], summaries["thne"]["mean"], variant)
            summaries[variant]["vs_thne"] = stats
        result["significance"] = comparison
    write_json(out_path, result)
    return result


def manifest_videos(manifest: str | os.PathLike) -> dict[str, str]:
    """Each clip's video id (clip id: video id) from a ``manifest.tsv``."""
    return {clip.clip_id: clip.video_id for clip in read_manifest(manifest)}


def check_differences(stats: dict, ours: dict, ref: dict, label: str) -> None:
    """The bootstrap's point estimates (``stats``, from the predictions) must be the difference
    of the means the tables print from the runs' metrics (``ours`` - ``ref``), or the two files
    are out of step."""
    for key in METRIC_KEYS:
        a, b, point = ours[key], ref[key], stats[key]["difference"]
        if point is None or a is None or b is None or not np.isfinite(a - b):
            continue
        if abs(point - (a - b)) > 1e-5:
            raise ValueError(
                f"{label} {key}: the runs' metrics.json give a mean difference of {a - b:.6f}, "
                f"their predictions.tsv {point:.6f}: rerun the evaluate step"
            )
