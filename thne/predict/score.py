"""The model on new clips: tokens and features prepared as in training, then one forward pass
per batch, keeping each clip's prediction, CPC scores (Eq. 6) and Eq. 2 attention weights.

Tensors are built by :func:`thne.train.data.split_tensors` and batched by
:meth:`~thne.train.data.SplitTensors.batch`, as the training loop's evaluation does, so a
clip of the run's test split gets the prediction ``predictions.tsv`` holds for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd
import torch

from thne.data.clips import Clip
from thne.features.store import read_h5
from thne.runs import TrainedRun
from thne.train.data import fit_length, split_tensors
from thne.train.forward import autocast_as, model_inputs

PREDICTION_COLUMNS = (
    "clip",
    "media",
    "start",
    "end",
    "prediction",
    "polarity",
    "acc7_class",
    "s_fv",
    "s_fa",
    "face_detected",
    "audio_present",
)


@dataclass
class ClipScore:
    clip_id: str
    prediction: float
    s_fv: float
    s_fa: float
    # Eq. 2's weights over the steps the model saw, and those steps' times (seconds from the
    # clip's start); None where the variant has no text-guided attention.
    attn_v: np.ndarray | None
    attn_a: np.ndarray | None
    times_v: np.ndarray
    times_a: np.ndarray
    face_detected: float  # share of video frames with a face
    audio_present: float  # 1 where the media has a sound track


@dataclass
class ClipFeatures:
    """The clips' raw features and frame times, read once for all the runs that score them."""

    clips: list[Clip]
    visual: list[np.ndarray]
    acoustic: list[np.ndarray]
    visual_times: list[np.ndarray]
    acoustic_times: list[np.ndarray]
    visual_names: list[str]
    acoustic_names: list[str]


def _timestamps(path: str | os.PathLike, ids: Sequence[str]) -> dict[str, np.ndarray]:
    with h5py.File(path, "r", locking=False) as h5:
        return {c: h5[c]["timestamps"][()] for c in ids if c in h5}


def read_features(
    clips: Sequence[Clip], audio_h5: str | os.PathLike, visual_h5: str | os.PathLike
) -> ClipFeatures:
    """The clips found in both feature files (the others were excluded there)."""
    ids = [c.clip_id for c in clips]
    audio, visual = read_h5(audio_h5, ids), read_h5(visual_h5, ids)
    kept = [c for c in clips if c.clip_id in audio.features and c.clip_id in visual.features]
    a_times, v_times = _timestamps(audio_h5, ids), _timestamps(visual_h5, ids)
    return ClipFeatures(
        clips=kept,
        visual=[visual.features[c.clip_id] for c in kept],
        acoustic=[audio.features[c.clip_id] for c in kept],
        visual_times=[v_times[c.clip_id] for c in kept],
        acoustic_times=[a_times[c.clip_id] for c in kept],
        visual_names=visual.feature_names,
        acoustic_names=audio.feature_names,
    )


def _steps(times: np.ndarray, max_frames: int) -> np.ndarray:
    """The times of the steps :func:`fit_length` keeps of a sequence with these times."""
    return fit_length(np.asarray(times)[:, None], max_frames)[:, 0]


def _presence(x: np.ndarray, names: list[str], name: str) -> float:
    return float((x[:, names.index(name)] > 0).mean()) if name in names and len(x) else 1.0


def _row(attn: torch.Tensor | None, row: int, n: int) -> np.ndarray | None:
    return None if attn is None else attn[row, :n].float().cpu().numpy()


@torch.no_grad()
def score_run(run: TrainedRun, data: ClipFeatures) -> list[ClipScore]:
    """Each clip of ``data`` through ``run``'s model, on the model's device."""
    if data.visual_names != run.provenance["visual"]["feature_names"] or (
        data.acoustic_names != run.provenance["acoustic"]["feature_names"]
    ):
        raise ValueError(f"{run.path}: the features given are not the ones the run was trained on")
    if not data.clips:
        return []
    text = run.provenance["text"]
    max_frames = int(run.provenance["max_frames"])
    tokens = run.tokenizer.encode([c.text for c in data.clips], int(text["max_length"]))
    split = split_tensors(
        [c.clip_id for c in data.clips],
        [c.text for c in data.clips],
        [0.0] * len(data.clips),
        tokens["input_ids"],
        tokens["attention_mask"],
        data.visual,
        data.acoustic,
        visual_norm=run.visual_norm,
        acoustic_norm=run.acoustic_norm,
        max_frames=max_frames,
    )
    device = next(run.model.parameters()).device
    split = split.to(device)
    scores: list[ClipScore] = []
    size = run.config.batch_size
    for start in range(0, len(split), size):
        index = torch.arange(start, min(start + size, len(split)), device=device)
        batch = split.batch(index)
        # The precision training's evaluation ran in, so a run's test clips get the
        # predictions its predictions.tsv holds.
        with autocast_as(run.precision, device):
            out = run.model(**model_inputs(batch))
            cpc = {k: v.float().cpu().numpy() for k, v in run.model.cpc_scores(out).items()}
        for row, i in enumerate(index.tolist()):
            n_v, n_a = int(split.visual_len[i]), int(split.acoustic_len[i])
            scores.append(
                ClipScore(
                    clip_id=split.clip_ids[i],
                    prediction=float(out.pred[row].float()),
                    s_fv=float(cpc["s_fv"][row]) if "s_fv" in cpc else float("nan"),
                    s_fa=float(cpc["s_fa"][row]) if "s_fa" in cpc else float("nan"),
                    attn_v=_row(out.attn_v, row, n_v),
                    attn_a=_row(out.attn_a, row, n_a),
                    times_v=_steps(data.visual_times[i], max_frames)[:n_v],
                    times_a=_steps(data.acoustic_times[i], max_frames)[:n_a],
                    face_detected=_presence(data.visual[i], data.visual_names, "face_detected"),
                    audio_present=_presence(data.acoustic[i], data.acoustic_names, "audio_present"),
                )
            )
    return scores


def polarity(prediction: float) -> str:
    return "positive" if prediction > 0 else "negative" if prediction < 0 else "neutral"


def acc7_class(prediction: float) -> int:
    """The Acc-7 class, -3..3, as the metrics compute it (round half to even)."""
    return int(np.round(np.clip(prediction, -3.0, 3.0)))


def mean_attention(per_run: list[list[ClipScore]]) -> list[ClipScore]:
    """One score per clip over the runs (seeds): the mean prediction, CPC scores and
    attention weights (the runs share the clips' steps, so the mean still sums to 1)."""

    def mean(values):
        return None if any(v is None for v in values) else np.mean(values, axis=0)

    merged = []
    for scores in zip(*per_run, strict=True):
        first = scores[0]
        merged.append(
            ClipScore(
                clip_id=first.clip_id,
                prediction=float(np.mean([s.prediction for s in scores])),
                s_fv=float(np.mean([s.s_fv for s in scores])),
                s_fa=float(np.mean([s.s_fa for s in scores])),
                attn_v=mean([s.attn_v for s in scores]),
                attn_a=mean([s.attn_a for s in scores]),
                times_v=first.times_v,
                times_a=first.times_a,
                face_detected=first.face_detected,
                audio_present=first.audio_present,
            )
        )
    return merged


def predictions_table(clips: Sequence[Clip], per_run: list[list[ClipScore]]) -> pd.DataFrame:
    """One row per clip: :data:`PREDICTION_COLUMNS`; over several runs (an ensemble's seeds)
    the mean, with ``prediction_std`` (the spread over seeds) and ``n_seeds`` added."""
    by_id = {c.clip_id: c for c in clips}
    merged = mean_attention(per_run)
    rows = []
    for k, s in enumerate(merged):
        clip = by_id[s.clip_id]
        row = {
            "clip": s.clip_id,
            "media": clip.media,
            "start": clip.start,
            "end": clip.end,
            "prediction": s.prediction,
            "polarity": polarity(s.prediction),
            "acc7_class": acc7_class(s.prediction),
            "s_fv": s.s_fv,
            "s_fa": s.s_fa,
            "face_detected": s.face_detected,
            "audio_present": s.audio_present,
        }
        if len(per_run) > 1:
            seeds = [run[k].prediction for run in per_run]
            row["prediction_std"] = float(np.std(seeds, ddof=1))
            row["n_seeds"] = len(seeds)
        rows.append(row)
    columns = list(PREDICTION_COLUMNS) + (["prediction_std", "n_seeds"] if len(per_run) > 1 else [])
    return pd.DataFrame(rows, columns=columns)
