"""Table 5 of the paper, for our runs: the test clips where t-HNE's error is smallest and
largest, with transcript, truth, prediction and the three CPC scores of Eq. 6.

Predictions and scores are means over the seeds. s_fv and s_fa are the trained CPC heads'
scores; s_ft, which the paper computes but does not train, comes from a text CPC head trained
on detached inputs beside the model, so it cannot change the model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from thne.data.manifest import read_manifest
from thne.io import atomic_path

SCORES = ("s_ft", "s_fv", "s_fa")


def case_table(
    predictions: Sequence[str | os.PathLike], manifest: str | os.PathLike
) -> pd.DataFrame:
    """Per test clip: text, truth, mean prediction and scores over seeds, absolute error."""
    if not predictions:
        raise ValueError("no predictions.tsv given")
    runs = [pd.read_csv(p, sep="\t", dtype={"clip_id": str}) for p in predictions]
    ids = [set(r["clip_id"]) for r in runs]
    if any(i != ids[0] for i in ids):
        raise ValueError(f"the runs {list(map(str, predictions))} predict different clips")
    frame = pd.concat(runs).groupby("clip_id", sort=False)[["label", "prediction", *SCORES]].mean()
    text = {c.clip_id: c.text for c in read_manifest(manifest)}
    frame.insert(0, "text", [text.get(c, "") for c in frame.index])
    frame["error"] = (frame["prediction"] - frame["label"]).abs()
    return frame


def _markdown(frame: pd.DataFrame) -> str:
    def score(v: float) -> str:
        return "-" if pd.isna(v) else f"{v:.2f}"

    lines = [
        "| Clip | Text | Truth | Prediction | \\|error\\| | s_ft / s_fv / s_fa |",
        "|---|---|---|---|---|---|",
    ]
    for clip_id, row in frame.iterrows():
        text = str(row["text"]).replace("|", "\\|")
        scores = " / ".join(score(row[s]) for s in SCORES)
        lines.append(
            f"| {clip_id} | {text} | {row['label']:+.4f} | {row['prediction']:+.4f} | "
            f"{row['error']:.4f} | {scores} |"
        )
    return "\n".join(lines) + "\n"


def write_cases(
    predictions: Sequence[str | os.PathLike],
    manifest: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dataset: str,
    n: int = 5,
) -> pd.DataFrame:
    """``cases.md``: the ``n`` test clips with the smallest and the ``n`` with the largest error.

    With fewer than ``2 n`` test clips, each list takes half of them, so no clip is in both.
    """
    frame = case_table(predictions, manifest).sort_values(["error", "label"], kind="stable")
    n = min(n, len(frame) // 2)
    if n < 1:
        raise ValueError(f"{len(frame)} test clip(s): too few for a best and a worst list")
    text = (
        f"# Case study on {dataset} (paper Table 5)\n\n"
        f"t-HNE's test predictions, mean over {len(predictions)} seed(s). Scores are "
        "s(F, h_m) of Eq. 6, exp of a cosine, so in [1/e, e]. s_fv and s_fa come from the "
        "trained CPC heads; s_ft from a text CPC head trained on detached inputs, which "
        "cannot change the model (the paper computes s_ft without training on it).\n\n"
        f"## The {n} smallest errors\n\n"
        + _markdown(frame.head(n))
        + f"\n## The {n} largest errors\n\n"
        + _markdown(frame.tail(n).iloc[::-1])
    )
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(text)
    return frame
