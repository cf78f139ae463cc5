"""Regression and classification metrics of multimodal sentiment analysis.

One function, :func:`regression_metrics`, computes every metric the project reports, with the
semantics of the MSA literature's reference evaluation code (see docs/reference/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METRIC_KEYS: tuple[str, ...] = (
    "mae",
    "corr",
    "acc7",
    "acc5",
    "acc2_has0",
    "f1_has0",
    "acc2_non0",
    "f1_non0",
)


def _as_vector(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {np.shape(values)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def pearson(pred: np.ndarray, truth: np.ndarray) -> float:
    """Pearson r, or 0.0 when either side is constant.

    r is undefined for a constant vector (zero variance). We return 0.0: a constant predictor
    carries no linear information about the labels, and a NaN would not survive JSON files or the
    mean over seeds.
    """
    pc = pred - pred.mean()
    tc = truth - truth.mean()
    denom = np.sqrt((pc * pc).sum() * (tc * tc).sum())
    if denom == 0.0:
        return 0.0
    return float(np.clip((pc * tc).sum() / denom, -1.0, 1.0))


# A run whose test predictions spread less than this share of the labels' (standard deviation
# over standard deviation) is reported as a near-constant predictor: a warning on the result in
# the run's log, its metrics.json and the tables, never a change to the epoch chosen.
CONSTANT_SHARE = 0.1


def spread_share(pred: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray) -> float:
    """The predictions' standard deviation over the labels' (NaN where the labels are constant)."""
    p, t = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    label_std = float(t.std())
    return float(p.std()) / label_std if label_std > 0 else float("nan")


def constant_warning(
    pred: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray
) -> str | None:
    """The warning for predictions that barely vary, or None."""
    share = spread_share(pred, truth)
    if not share < CONSTANT_SHARE:
        return None
    return (
        f"near-constant predictions: their spread is {share:.3f} of the labels' (under "
        f"{CONSTANT_SHARE}), so this run predicts about the same score for every clip and its "
        f"metrics are those of a constant, not of a model"
    )


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (the reference code's sklearn, zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=np.asarray(den) != 0)
    return out


def weighted_f1(tp, fp, fn, tn) -> np.ndarray:
    """Support-weighted F1 of the two classes from the confusion counts (scalars or arrays):
    what the reference code's ``sklearn.metrics.f1_score(average="weighted")`` gives, without
    importing scikit-learn (1.6 s of every job's start) for it."""
    f1_pos = ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = ratio(2 * tn, 2 * tn + fn + fp)
    return ratio((tp + fn) * f1_pos + (tn + fp) * f1_neg, tp + fn + tn + fp)


def _binary_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """weighted_f1 of two boolean vectors."""
    tp, fp = np.sum(truth & pred), np.sum(~truth & pred)
    fn, tn = np.sum(truth & ~pred), np.sum(~truth & ~pred)
    return float(weighted_f1(tp, fp, fn, tn))


def _class_accuracy(pred: np.ndarray, truth: np.ndarray, bound: float) -> float:
    # np.round rounds half to even, as the reference code does: 0.5 -> 0, 1.5 -> 2.
    p = np.round(np.clip(pred, -bound, bound))
    t = np.round(np.clip(truth, -bound, bound))
    return float(np.mean(p == t))


def regression_metrics(
    pred: Sequence[float] | np.ndarray, truth: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """All metrics for predictions ``pred`` against labels ``truth`` (both 1-D, same length).

    Accuracies and F1 are fractions in [0, 1]. ``*_has0`` splits non-negative from negative over
    all clips; ``*_non0`` drops clips labelled exactly 0 and splits positive from negative. F1 is
    the support-weighted F1.
    """
    p = _as_vector(pred, "pred")
    t = _as_vector(truth, "truth")
    if p.shape != t.shape:
        raise ValueError(f"pred and truth differ in length: {p.shape[0]} vs {t.shape[0]}")
    if p.size == 0:
        raise ValueError("cannot compute metrics on zero clips")

    out: dict[str, float] = {
        "mae": float(np.mean(np.abs(p - t))),
        "corr": pearson(p, t),
        "acc7": _class_accuracy(p, t, 3.0),
        "acc5": _class_accuracy(p, t, 2.0),
    }

    t_has0, p_has0 = t >= 0, p >= 0
    out["acc2_has0"] = float(np.mean(t_has0 == p_has0))
    out["f1_has0"] = _binary_f1(t_has0, p_has0)

    nonzero = t != 0
    if not nonzero.any():
        raise ValueError("every label is 0: acc2_non0 and f1_non0 are undefined")
    t_non0, p_non0 = t[nonzero] > 0, p[nonzero] > 0
    out["acc2_non0"] = float(np.mean(t_non0 == p_non0))
    out["f1_non0"] = _binary_f1(t_non0, p_non0)
    return {k: out[k] for k in METRIC_KEYS}
