"""Standard splits: the folds of the CMU Multimodal SDK, and the split report ``splits.json``."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

from thne.data.manifest import SPLITS, Clip
from thne.io import write_json

# Paper Table 1.
TABLE1: dict[str, dict[str, int]] = {
    "mosi": {"train": 1284, "valid": 229, "test": 686},
    "mosei": {"train": 16326, "valid": 1871, "test": 4659},
}

_FOLD_MODULES = {
    "mosi": "mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSI.cmu_mosi_std_folds",
    "mosei": "mmsdk.mmdatasdk.dataset.standard_datasets.CMU_MOSEI.cmu_mosei_std_folds",
}
NOT_IN_FOLD = "not in a standard fold"

# The copy of the SDK on PyPI (cmu-multimodal-sdk 0.0.6) lists one MOSEI video in its train fold
# that CMU's own SDK repository has in no fold (2250 train videos there, 2249 upstream). We
# follow upstream, whose folds give the published counts.
_NOT_IN_UPSTREAM_FOLDS: dict[str, frozenset[str]] = {"mosei": frozenset({"-NFrJFQijFE"})}


def standard_folds(dataset: str) -> dict[str, str]:
    """video_id -> split, from the SDK's standard folds of ``dataset`` (mosi or mosei), as CMU's
    SDK repository has them (MOSI 52/10/31 videos, MOSEI 2249/300/678)."""
    if dataset not in _FOLD_MODULES:
        raise ValueError(f"no standard folds for {dataset!r}; known: {', '.join(_FOLD_MODULES)}")
    module = importlib.import_module(_FOLD_MODULES[dataset])
    folds = {
        "train": module.standard_train_fold,
        "valid": module.standard_valid_fold,
        "test": module.standard_test_fold,
    }
    drop = _NOT_IN_UPSTREAM_FOLDS.get(dataset, frozenset())
    return {vid: split for split, vids in folds.items() for vid in vids if vid not in drop}


def write_splits_report(
    path: str | os.PathLike,
    kept: Iterable[Clip],
    rejected: Iterable[tuple[Clip, str]],
    *,
    dataset: str,
    layout: str,
) -> dict:
    """Counts per split beside paper Table 1 (where the dataset has a row there), the difference,
    and the clips left out of each split with their reason."""
    counts = dict.fromkeys(SPLITS, 0)
    for clip in kept:
        counts[clip.split] += 1
    left_out: dict[str, list[dict[str, str]]] = {}
    for clip, reason in rejected:
        left_out.setdefault(clip.split or "none", []).append(
            {"clip_id": clip.clip_id, "reason": reason}
        )
    report: dict = {
        "dataset": dataset,
        "layout": layout,
        "counts": counts,
        "total": sum(counts.values()),
    }
    paper = TABLE1.get(dataset)
    if paper is not None:
        report["paper_table1"] = paper
        report["difference"] = {s: counts[s] - paper[s] for s in SPLITS}
        # The paper does not list its clips: thne can name the clips it excluded itself
        # (left_out), not the ones a source holds beyond the paper's copy or lacks.
        notes = []
        more = [s for s in SPLITS if counts[s] > paper[s]]
        fewer = [s for s in SPLITS if counts[s] < paper[s]]
        if more:
            notes.append(
                f"more clips than paper Table 1 in {', '.join(more)}: the source's labels hold "
                "clips the paper's copy did not"
            )
        if fewer:
            notes.append(
                f"fewer clips than paper Table 1 in {', '.join(fewer)}: left_out names the "
                "clips excluded here; clips absent from the source's own label files are not "
                "known to it"
            )
        if notes:
            report["note"] = "; ".join(notes)
    report["left_out"] = left_out
    write_json(path, report)
    return report
