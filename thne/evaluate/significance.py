"""How sure a difference between two models is: a paired bootstrap over test videos (or clips).

The difference a table prints is a mean over seeds: each seed's metric on the test split,
averaged over the model's seeds, variant minus reference. The interval is about that same
number. A resample draws the test videos with replacement, each with all its clips (the
``video`` unit; the ``clip`` unit draws clips one by one instead); on it every seed of both
models is scored on the same clips (paired, so the clips' own difficulty cancels out), each
model's seed scores are averaged, and the two averages differenced. Videos, not clips, are
drawn by default because the clips of one video share a speaker and a topic, so their errors
move together: drawing clips one by one treats them as independent and gives too narrow an
interval. With fewer than :data:`MIN_VIDEOS` test videos a result says it is not
``reliable`` and why (:func:`caution`). The 95 % interval is the 2.5th to
97.5th percentile of that difference over the resamples, and ``thne_better`` the share of
resamples in which the reference's seed mean is strictly better (lower MAE, higher
everything else). ``ensemble_difference`` is another number, kept beside it: the difference
of the metrics of the seed-averaged predictions, which can differ from the mean over seeds
(averaging predictions over seeds can move a clip across a class boundary that no single
seed crosses).

Every metric of :func:`thne.evaluate.metrics.regression_metrics` is a function of a few
per-clip sums, so a resample is a vector of clip counts and all resamples of a chunk, for
every seed of every model at once, are one matrix product: 10,000 resamples of a MOSEI-sized
test split take seconds. A video resample is the same product: its drawn video counts [R, V]
become clip counts [R, n] (each clip counted as often as its video was drawn), and every
metric divides by the resample's own clip total, which varies from one resample to the next.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from thne.evaluate.metrics import METRIC_KEYS, ratio, weighted_f1

RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95
Unit = Literal["video", "clip"]
UNITS: tuple[Unit, ...] = ("video", "clip")
# Below this many test videos a percentile bootstrap over them is too narrow to trust.
MIN_VIDEOS = 20
_DRAWN = {
    "video": "test videos: on each resample (videos drawn with replacement, each with all its "
    "clips)",
    "clip": "test clips: on each resample (clips drawn with replacement)",
}


def method(unit: Unit) -> str:
    """The sentence that says how a result of ``unit`` was resampled."""
    return (
        f"paired bootstrap over {_DRAWN[unit]} every seed of both models is scored on the same "
        "clips, and each model's scores are averaged over its seeds before differencing"
    )


def caution(n_videos: int, unit: Unit) -> str:
    """Why an interval over ``n_videos`` (< :data:`MIN_VIDEOS`) test videos is unreliable."""
    text = (
        f"Unreliable: the test split has {n_videos} videos, fewer than {MIN_VIDEOS}. A "
        "percentile bootstrap that draws so few clusters gives intervals that are too narrow "
        "(Cameron, Gelbach & Miller 2008, 'Bootstrap-based improvements for inference with "
        "clustered errors', Review of Economics and Statistics)"
    )
    if unit == "clip":
        text += ", and drawing clips one by one ignores that the clips of a video err together"
    return text + "; read the interval as a rough guide only."


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


def seed_predictions(
    paths: Sequence[str | os.PathLike],
) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """The clips (sorted), their labels and each run's predictions [runs, clips] from the runs'
    ``predictions.tsv`` files. The runs must cover the same clips with the same labels."""
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
    preds = np.stack([f["prediction"].to_numpy(np.float64) for _, f in frames])
    return first.index, first["label"].to_numpy(np.float64), preds


def seed_mean_predictions(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """``clip_id``, ``label`` and the mean ``prediction`` over the runs' ``predictions.tsv``
    files, sorted by clip (see :func:`seed_predictions`)."""
    clips, label, preds = seed_predictions(paths)
    return pd.DataFrame({"clip_id": clips, "label": label, "prediction": preds.mean(axis=0)})


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


def _metrics(model: np.ndarray, shared: np.ndarray, n: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric from the weighted sums of one model's and the shared columns; each row of
    ``model`` [R, 14] and ``shared`` [R, 3] is one resample of ``n`` [R] clips."""
    m = dict(zip(_MODEL_COLUMNS, model.T, strict=True))
    s = dict(zip(_SHARED_COLUMNS, shared.T, strict=True))
    mean_p, mean_t = m["p"] / n, s["t"] / n
    cov = m["pt"] / n - mean_p * mean_t
    var = np.clip(m["p2"] / n - mean_p**2, 0, None) * np.clip(s["t2"] / n - mean_t**2, 0, None)
    corr = np.clip(ratio(cov, np.sqrt(var)), -1.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc2_non0 = (m["tp_nz"] + m["tn_nz"]) / s["nonzero"]  # NaN: no non-zero label drawn
    return {
        "mae": m["abs_err"] / n,
        "corr": corr,
        "acc7": m["hit7"] / n,
        "acc5": m["hit5"] / n,
        "acc2_has0": (m["tp"] + m["tn"]) / n,
        "f1_has0": weighted_f1(m["tp"], m["fp"], m["fn"], m["tn"]),
        "acc2_non0": acc2_non0,
        "f1_non0": weighted_f1(m["tp_nz"], m["fp_nz"], m["fn_nz"], m["tn_nz"]),
    }


def metrics_from_counts(
    preds: Sequence[np.ndarray], truth: np.ndarray, counts: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Each model's metrics on each resample; ``counts`` [R, n] says how often each clip is
    drawn (a row of ones is the test split itself). A row may hold any number of clips."""
    truth = np.asarray(truth, dtype=np.float64)
    shared = np.stack([truth, truth * truth, (truth != 0).astype(np.float64)], axis=1)
    columns = [_model_columns(np.asarray(p, np.float64), truth) for p in preds]
    table = np.concatenate([shared, *columns], axis=1)
    sums = counts @ table  # [R, 3 + 14 * models]
    width = len(_MODEL_COLUMNS)
    n = counts.sum(axis=1)  # a video resample's clip total varies
    return [
        _metrics(sums[:, 3 + i * width : 3 + (i + 1) * width], sums[:, :3], n)
        for i in range(len(preds))
    ]


def _draw_counts(n: int, resamples: int, seed: int, chunk: int):
    """Chunks of unit counts [rows, n], one row per resample, from a fixed ``seed``."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        draws = rng.integers(0, n, size=(rows, n))
        # Clip counts of each resample: one bincount over row-offset indices.
        offsets = (np.arange(rows) * n)[:, None]
        counts = np.bincount((draws + offsets).ravel(), minlength=rows * n).reshape(rows, n)
        yield counts.astype(np.float64)


def video_index(
    unit: Unit, videos: Sequence[str] | None, n: int
) -> tuple[np.ndarray | None, int | None]:
    """Each clip's video as an index into the test videos, and how many there are; (None,
    None) for the clip unit without ``videos``. The video unit needs them."""
    if unit not in UNITS:
        raise ValueError(f"bootstrap unit {unit!r}: give one of {', '.join(UNITS)}")
    if videos is None:
        if unit == "video":
            raise ValueError("a bootstrap over videos needs each test clip's video id")
        return None, None
    if len(videos) != n:
        raise ValueError(f"{len(videos)} video ids for {n} test clips")
    names, index = np.unique(np.asarray(videos, dtype=str), return_inverse=True)
    return index, len(names)


def bootstrap(
    preds: Sequence[np.ndarray],
    truth: np.ndarray,
    *,
    unit: Unit = "video",
    videos: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    chunk: int = 500,
) -> list[dict[str, np.ndarray]]:
    """Each prediction set's metrics on the same ``resamples`` draws (fixed ``seed``) of the
    test videos (``videos``: each clip's video id), each with all its clips, or of the clips
    (``unit="clip"``)."""
    n = len(truth)
    if n == 0:
        raise ValueError("no test clips to resample")
    index, n_videos = video_index(unit, videos, n)
    if unit == "clip":
        draws = _draw_counts(n, resamples, seed, chunk)
    else:  # a clip is drawn as often as its video
        draws = (c[:, index] for c in _draw_counts(n_videos, resamples, seed, chunk))
    parts = [metrics_from_counts(preds, truth, c) for c in draws]
    return [
        {k: np.concatenate([part[i][k] for part in parts]) for k in METRIC_KEYS}
        for i in range(len(preds))
    ]


def _seed_mean(per_seed: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Each metric averaged over seeds, resample by resample."""
    return {k: np.mean([m[k] for m in per_seed], axis=0) for k in METRIC_KEYS}


def _interval(
    diff: np.ndarray, variant: np.ndarray, reference: np.ndarray, key: str
) -> tuple[list[float], float] | tuple[None, None]:
    """The 95 % percentile interval of ``diff`` over resamples and the reference's share of
    strict wins; (None, None) when the metric is undefined on every resample."""
    valid = ~np.isnan(diff)
    if not valid.any():  # acc2_non0 / f1_non0 when every test label is 0
        return None, None
    alpha = (1 - LEVEL) / 2
    lo, hi = np.quantile(diff[valid], [alpha, 1 - alpha])
    better = reference < variant if key in LOWER_IS_BETTER else reference > variant
    return [round(float(lo), 6), round(float(hi), 6)], round(float(np.mean(better[valid])), 4)


def compare_many(
    models: Mapping[str, Sequence[np.ndarray]],
    truth: np.ndarray,
    *,
    reference: str,
    unit: Unit = "video",
    videos: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    chunk: int = 500,
) -> dict[str, dict[str, dict[str, object]]]:
    """Every model of ``models`` (name: its seeds' predictions) against ``reference``, per
    metric: ``difference`` (mean over seeds, model minus reference, on all clips), its
    ``interval`` and ``thne_better`` over paired resamples (of ``unit``, see
    :func:`bootstrap`) of the mean-over-seeds difference, and ``ensemble_difference`` (the
    seed-averaged predictions' difference, all clips).

    All seeds of all models are scored on each resample in one matrix product, so the
    reference's scores are computed once for every comparison."""
    truth = np.asarray(truth, dtype=np.float64)
    n = len(truth)
    if n == 0:
        raise ValueError("no test clips to resample")
    names = list(models)
    flat = [np.asarray(p, np.float64) for name in names for p in models[name]]
    slices, at = {}, 0
    for name in names:
        slices[name] = slice(at, at + len(models[name]))
        at += len(models[name])
    ensembles = [np.mean(models[name], axis=0) for name in names]
    whole = metrics_from_counts(flat + ensembles, truth, np.ones((1, n)))
    means = {name: _seed_mean(whole[slices[name]]) for name in names}
    ensemble = dict(zip(names, whole[len(flat) :], strict=True))
    per_set = bootstrap(
        flat, truth, unit=unit, videos=videos, resamples=resamples, seed=seed, chunk=chunk
    )
    sampled = {name: _seed_mean(per_set[slices[name]]) for name in names}
    out: dict[str, dict[str, dict[str, object]]] = {}
    for name in names:
        if name == reference:
            continue
        stats: dict[str, dict[str, object]] = {}
        for key in METRIC_KEYS:
            point = float(means[name][key][0] - means[reference][key][0])
            interval, better = _interval(
                sampled[name][key] - sampled[reference][key],
                sampled[name][key],
                sampled[reference][key],
                key,
            )
            ens = float(ensemble[name][key][0] - ensemble[reference][key][0])
            stats[key] = {
                "difference": None if np.isnan(point) else round(point, 6),
                "interval": interval,
                "thne_better": better,
                "ensemble_difference": None if np.isnan(ens) else round(ens, 6),
            }
        out[name] = stats
    return out


def compare(
    variant: np.ndarray | Sequence[np.ndarray],
    reference: np.ndarray | Sequence[np.ndarray],
    truth: np.ndarray,
    *,
    unit: Unit = "video",
    videos: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, dict[str, object]]:
    """One model against the reference; each is one prediction array or a list of its seeds'
    (see :func:`compare_many`)."""

    def seeds(x: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        arr = np.asarray(x, dtype=np.float64)
        return [arr] if arr.ndim == 1 else list(arr)

    return compare_many(
        {"variant": seeds(variant), "reference": seeds(reference)},
        truth,
        reference="reference",
        unit=unit,
        videos=videos,
        resamples=resamples,
        seed=seed,
    )["variant"]


def compare_variants(
    predictions: Mapping[str, Sequence[str | os.PathLike]],
    *,
    reference: str = "thne",
    unit: Unit = "video",
    videos: Mapping[str, str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict:
    """Every variant against ``reference`` from their runs' ``predictions.tsv`` files: the
    difference of the means over seeds (variant minus reference) with its bootstrap interval,
    the reference's share of wins, and the seed-averaged predictions' difference. ``videos``
    (clip id: video id, e.g. from the manifest) must name every test clip's video; the video
    unit needs it. The result records the unit, the clip and video counts and, where the test
    videos are fewer than :data:`MIN_VIDEOS`, ``reliable: false`` with a ``caution``."""
    if reference not in predictions:
        raise ValueError(f"no predictions of {reference!r} to compare the variants with")
    clips, truth, _ = seed_predictions(predictions[reference])
    models = {}
    for variant, paths in predictions.items():
        other, labels, preds = seed_predictions(paths)
        if not other.equals(clips):
            raise ValueError(f"{variant}: other test clips than {reference}")
        if not np.allclose(labels, truth):
            raise ValueError(f"{variant}: other labels than {reference} for the same clips")
        models[variant] = list(preds)
    clip_videos = None
    if videos is not None:
        lacking = [c for c in clips if c not in videos]
        if lacking:
            raise ValueError(f"no video id for test clip(s) {', '.join(lacking[:5])}")
        clip_videos = [videos[c] for c in clips]
    _, n_videos = video_index(unit, clip_videos, len(clips))
    result: dict = {
        "reference": reference,
        "method": method(unit),
        "unit": unit,
        "resamples": resamples,
        "seed": seed,
        "level": LEVEL,
        "n_clips": len(clips),
        "n_videos": n_videos,
        # Unknown video counts (clip unit, no ids) cannot be judged: no caution is claimed.
        "reliable": n_videos is None or n_videos >= MIN_VIDEOS,
    }
    if not result["reliable"]:
        result["caution"] = caution(n_videos, unit)
    result["variants"] = compare_many(
        models,
        truth,
        reference=reference,
        unit=unit,
        videos=clip_videos,
        resamples=resamples,
        seed=seed,
    )
    return result
