"""Evaluation of a run's test predictions, and aggregation of runs over seeds."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from thne.evaluate.metrics import METRIC_KEYS, regression_metrics
from thne.io import write_json


def evaluate_predictions(
    predictions: str | os.PathLike, out_path: str | os.PathLike, **info
) -> dict:
    """Test metrics of one run from its ``predictions.tsv``; written to ``out_path``."""
    frame = pd.read_csv(predictions, sep="\t", dtype={"clip_id": str})
    if frame.empty:
        raise ValueError(f"{predictions}: no predictions")
    metrics = regression_metrics(frame["prediction"].to_numpy(), frame["label"].to_numpy())
    write_json(out_path, {**info, "n_clips": len(frame), **metrics})
    return metrics


def aggregate_runs(
    run_metrics: Iterable[str | os.PathLike],
    out_path: str | os.PathLike,
    *,
    dataset: str,
    variant: str,
) -> dict:
    """Mean and sample standard deviation of each metric over the runs (seeds)."""
    runs = [json.loads(open(p).read()) for p in run_metrics]
    if not runs:
        raise ValueError("no runs to aggregate")
    table = np.array([[r[k] for k in METRIC_KEYS] for r in runs], dtype=np.float64)
    std = table.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(METRIC_KEYS))
    result = {
        "dataset": dataset,
        "variant": variant,
        "seeds": [r.get("seed") for r in runs],
        "mean": dict(zip(METRIC_KEYS, table.mean(axis=0).round(6).tolist(), strict=True)),
        "std": dict(zip(METRIC_KEYS, std.round(6).tolist(), strict=True)),
        "runs": runs,
    }
    write_json(out_path, result)
    return result
