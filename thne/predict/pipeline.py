"""``thne predict`` from end to end: read and check the clips, extract their features, score
them with one run or every seed of a variant, write the table, and draw the figures."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from thne.data.manifest import read_manifest
from thne.io import atomic_path
from thne.predict.extract import extract_features
from thne.predict.inputs import check_inputs, read_inputs, write_clips
from thne.predict.score import mean_attention, predictions_table, read_features, score_run
from thne.runs import load_run, same_inputs, seed_runs

EXCLUDED_COLUMNS = ("clip", "media", "reason")


@dataclass
class PredictResult:
    n_scored: int
    n_excluded: int
    n_runs: int
    table: pd.DataFrame


def excluded_path_for(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}.excluded.tsv")


def predict(
    inputs: list[str],
    out: str | os.PathLike,
    *,
    run: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    ensemble: str | os.PathLike | None = None,
    text: str | None = None,
    excluded_path: str | os.PathLike | None = None,
    explain: str | os.PathLike | None = None,
    work: str | os.PathLike | None = None,
    manifest: str | os.PathLike | None = None,
    audio: str | os.PathLike | None = None,
    visual: str | os.PathLike | None = None,
    on_bad_clip: str = "fail",
    threads: int = 1,
    device: str = "cpu",
) -> PredictResult:
    """Score ``inputs`` (or the clips of ``manifest``) with the run ``run`` (several runs:
    their mean) or every seed under ``ensemble``; write ``out`` and the exclusion list.
    ``audio``/``visual`` are the clips' feature files when already extracted (the workflow's
    rule), else they are extracted into ``work`` (default: a temporary folder)."""
    if (run is None) == (ensemble is None):
        raise ValueError("give one of run and ensemble")
    if run is not None:
        dirs = [Path(run)] if isinstance(run, str | os.PathLike) else [Path(r) for r in run]
    else:
        dirs = seed_runs(ensemble)
    runs = [load_run(d, device) for d in dirs]
    same_inputs(runs)
    provenance = runs[0].provenance
    if explain is not None:
        from thne.predict.explain import NoAttention, has_attention

        if not has_attention(runs[0].config.model, runs[0].config.deno1):
            raise NoAttention(
                f"{dirs[0]}: variant {runs[0].config.variant!r} has no text-guided attention "
                "(Eq. 2) to explain; use a variant with deno1"
            )

    rejected: list[tuple[str, str, str]] = []
    if manifest is not None:
        clips = read_manifest(manifest)
    else:
        clips, refused = check_inputs(read_inputs(inputs, text), on_bad_clip)
        rejected += [(r.clip.clip_id, r.clip.media, r.reason) for r in refused]
    with ExitStack() as stack:
        if audio is None:
            folder = (
                Path(work) if work else Path(stack.enter_context(tempfile.TemporaryDirectory()))
            )
            write_clips(folder / "manifest.tsv", clips)
            audio, visual, exclusions = extract_features(
                clips, provenance, folder, on_bad_clip=on_bad_clip, threads=threads
            )
        else:
            exclusions = []
        data = read_features(clips, audio, visual)
    media = {c.clip_id: c.media for c in clips}
    seen = set()
    for e in exclusions:
        if e.clip_id not in seen:
            seen.add(e.clip_id)
            rejected.append((e.clip_id, media[e.clip_id], e.reason))
    # Clips a feature file left out for a reason the workflow recorded there.
    scored = {c.clip_id for c in data.clips}
    for c in clips:
        if c.clip_id not in scored and c.clip_id not in seen:
            rejected.append((c.clip_id, c.media, "no features (excluded at extraction)"))
    for clip_id, _, reason in rejected:
        print(f"predict: excluded clip {clip_id}: {reason}", file=sys.stderr)

    per_run = [score_run(r, data) for r in runs]
    table = predictions_table(data.clips, per_run)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    with atomic_path(excluded_path or excluded_path_for(out)) as tmp:
        pd.DataFrame(rejected, columns=list(EXCLUDED_COLUMNS)).to_csv(tmp, sep="\t", index=False)
    if explain is not None:
        from thne.predict.explain import write_explanations

        write_explanations(data.clips, mean_attention(per_run), explain)
    return PredictResult(len(table), len(rejected), len(runs), table)
