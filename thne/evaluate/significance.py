"""How sure a difference between two models is: a paired bootstrap over test clips.

Each model's predictions are first averaged over its seeds, clip by clip. A resample draws
the test clips with replacement; both models are scored on the same draw, so the clips'
own difficulty cancels out (paired). The 95 % interval is the 2.5th to 97.5th percentile of
the metric's difference over the resamples, and ``thne_better`` the share of resamples in
which t-HNE's value is strictly better (lower MAE, higher everything else). The interval is
around ``ensemble_difference``, the difference of the seed-averaged predictions' metrics on
the whole test split, which need not equal the difference of the per-seed means: averaging
predictions over seeds can move a clip across a class boundary that no single seed crosses.

Every metric of :func:`thne.evaluate.metrics.regression_metrics` is a function of a few
per-clip sums, so a resample is a vector of clip counts and all resamples of a chunk are one
matrix product: 10,000 resamples of a MOSEI-sized test split take seconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from thne.evaluate.metrics import METRIC_KEYS

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
METHOD = (
    "paired bootstrap over test clips: each model's predictions averaged over its seeds, "
    "clips resampled with replacement, both models scored on the same resample"
)
LOWER_IS_BETTER = {"mae"}

# Per-clip columns of one model, in this order.
_MODEL_COLUMNS = (
    "abs_err",
    "p",
    "p2",
    "pt",
    "hit7",
    "hit5",
    "tp",
    "fp",
    "fn",
    "tn",
    "tp_nz",
    "fp_nz",
    "fn_nz",
    "tn_nz",
)
_SHARED_COLUMNS = ("t", "t2", "nonzero")


def seed_mean_predictions(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """``clip_id``, ``label`` and the mean ``prediction`` over the runs' ``predictions.tsv``
    files, sorted by clip. The runs must cover the same clips with the same labels."""
    frames = []
    for path in paths:
        frame = pd.read_csv(path, sep="\t", dtype={"clip_id": str})
        frames.append((path, frame.set_index("clip_id").sort_index()))
    first_path, first = frames[0]
    for path, frame in frames[1:]:
        if not frame.index.equals(first.index):
            raise ValueError(f"{path}: other test clips than {first_path}")
        if not np.allclose(frame["label"], first["label"]):
            raise ValueError(f"{path}: other labels than {first_path} for the same clips")
    mean = np.mean([f["prediction"].to_numpy(np.float64) for _, f in frames], axis=0)
    return pd.DataFrame(
        {"clip_id": first.index, "label": first["label"].to_numpy(), "prediction": mean}
    )


def _model_columns(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    def rounded(x: np.ndarray, bound: float) -> np.ndarray:
        return np.round(np.clip(x, -bound, bound))  # as metrics.py: half to even

    t_has0, p_has0 = truth >= 0, pred >= 0
    nz = truth != 0
    t_non0, p_non0 = truth > 0, pred > 0
    cols = [
        np.abs(pred - truth),
        pred,
        pred * pred,
        pred * truth,
        rounded(pred, 3.0) == rounded(truth, 3.0),
        rounded(pred, 2.0) == rounded(truth, 2.0),
        t_has0 & p_has0,
        ~t_has0 & p_has0,
        t_has0 & ~p_has0,
        ~t_has0 & ~p_has0,
        nz & t_non0 & p_non0,
        nz & ~t_non0 & p_non0,
        nz & t_non0 & ~p_non0,
        nz & ~t_non0 & ~p_non0,
    ]
    return np.stack([np.asarray(c, dtype=np.float64) for c in cols], axis=1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (sklearn's zero_division=0)."""
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _weighted_f1(tp, fp, fn, tn) -> np.ndarray:
    """Support-weighted F1 of the two classes, from the confusion counts."""
    f1_pos = _ratio(2 * tp, 2 * tp + fp + fn)
    f1_neg = _ratio(2 * tn, 2 * tn + fn + fp)
    return _ratio((tp + fn) * f1_pos + (tn + fp) * f1_neg, tp + fn + tn + fp)


def _metrics(model: np.ndarray, shared: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Every metric from the weighted sums of one model's and the shared columns; each row of
    ``model`` [R, 14] and ``shared`` [R, 3] is one resample of ``n`` clips."""
    m = dict(zip(_MODEL_COLUMNS, model.T, strict=True))
    s = dict(zip(_SHARED_COLUMNS, shared.T, strict=True))
    mean_p, mean_t = m["p"] / n, s["t"] / n
    cov = m["pt"] / n - mean_p * mean_t
    var = np.clip(m["p2"] / n - mean_p**2, 0, None) * np.clip(s["t2"] / n - mean_t**2, 0, None)
    corr = np.clip(_ratio(cov, np.sqrt(var)), -1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc2_non0 = (m["tp_nz"] + m["tn_nz"]) / s["nonzero"]  # NaN: no non-zero label drawn
    return {
        "mae": m["abs_err"] / n,
        "corr": corr,
        "acc7": m["hit7"] / n,
        "acc5": m["hit5"] / n,
        "acc2_has0": (m["tp"] + m["tn"]) / n,
        "f1_has0": _weighted_f1(m["tp"], m["fp"], m["fn"], m["tn"]),
        "acc2_non0": acc2_non0,
        "f1_non0": _weighted_f1(m["tp_nz"], m["fp_nz"], m["fn_nz"], m["tn_nz"]),
    }


def metrics_from_counts(
    preds: Sequence[np.ndarray], truth: np.ndarray, counts: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Each model's metrics on each resample; ``counts`` [R, n] says how often each clip is
    drawn (a row of ones is the test split itself)."""
    truth = np.asarray(truth, dtype=np.float64)
    shared = np.stack([truth, truth * truth, (truth != 0).astype(np.float64)], axis=1)
    columns = [_model_columns(np.asarray(p, np.float64), truth) for p in preds]
    table = np.concatenate([shared, *columns], axis=1)
    sums = counts @ table  # [R, 3 + 14 * models]
    width = len(_MODEL_COLUMNS)
    n = len(truth)
    return [
        _metrics(sums[:, 3 + i * width : 3 + (i + 1) * width], sums[:, :3], n)
        for i in range(len(preds))
    ]


def bootstrap(
    preds: Sequence[np.ndarray],
    truth: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    chunk: int = 500,
) -> list[dict[str, np.ndarray]]:
    """Each model's metrics on the same ``resamples`` draws of the clips (fixed ``seed``)."""
    n = len(truth)
    if n == 0:
        raise ValueError("no test clips to resample")
    rng = np.random.default_rng(seed)
    parts: list[list[dict[str, np.ndarray]]] = []
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(rows, n))
        # Clip counts of each resample: one bincount over row-offset indices.
        offsets = (np.arange(rows) * n)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=rows * n).reshape(rows, n)
        parts.append(metrics_from_counts(preds, truth, counts.astype(np.float64)))
    return [
        {k: np.concatenate([part[i][k] for part in parts]) for k in METRIC_KEYS}
        for i in range(len(preds))
    ]


def compare(
    variant: np.ndarray,
    reference: np.ndarray,
    truth: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, dict[str, object]]:
    """For each metric: the 95 % interval of (variant - reference) over paired resamples, and
    the share of resamples in which the reference is strictly better."""
    ours, ref = bootstrap([variant, reference], truth, resamples=resamples, seed=seed)
    whole = metrics_from_counts([variant, reference], truth, np.ones((1, len(truth))))
    alpha = (1 - LEVEL) / 2
    out: dict[str, dict[str, object]] = {}
    for key in METRIC_KEYS:
        # The difference the resamples scatter around: seed-averaged predictions, all clips.
        observed = float(whole[0][key][0] - whole[1][key][0])
        diff = ours[key] - ref[key]
        valid = ~np.isnan(diff)
        if not valid.any():  # acc2_non0 / f1_non0 when every test label is 0
            out[key] = {"ensemble_difference": None, "interval": None, "thne_better": None}
            continue
        lo, hi = np.quantile(diff[valid], [alpha, 1 - alpha])
        better = ref[key] < ours[key] if key in LOWER_IS_BETTER else ref[key] > ours[key]
        out[key] = {
            "ensemble_difference": round(observed, 6),
            "interval": [round(float(lo), 6), round(float(hi), 6)],
            "thne_better": round(float(np.mean(better[valid])), 4),
        }
    return out


def compare_variants(
    predictions: Mapping[str, Sequence[str | os.PathLike]],
    means: Mapping[str, Mapping[str, float]],
    *,
    reference: str = "thne",
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict:
    """Every variant against ``reference``: the difference of the means over seeds (variant
    minus reference) with its bootstrap interval and the reference's share of wins."""
    if reference not in predictions:
        raise ValueError(f"no predictions of {reference!r} to compare the variants with")
    ref = seed_mean_predictions(predictions[reference])
    result: dict = {
        "reference": reference,
        "method": METHOD,
        "resamples": resamples,
        "seed": seed,
        "level": LEVEL,
        "n_clips": len(ref),
        "variants": {},
    }
    for variant, paths in predictions.items():
        if variant == reference:
            continue
        other = seed_mean_predictions(paths)
        if not other["clip_id"].equals(ref["clip_id"]):
            raise ValueError(f"{variant}: other test clips than {reference}")
        stats = compare(
            other["prediction"].to_numpy(),
            ref["prediction"].to_numpy(),
            ref["label"].to_numpy(np.float64),
            resamples=resamples,
            seed=seed,
        )
        for key in METRIC_KEYS:
            stats[key] = {
                "difference": round(means[variant][key] - means[reference][key], 6),
                **stats[key],
            }
        result["variants"][variant] = stats
    return result
