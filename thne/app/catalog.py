"""The trained runs the page offers: each seed on its own, and each variant's seeds together
(an ensemble), described by what a reader needs to choose one: dataset, variant, seeds, the
test metrics and whether it can score media at all.

Only ``run.json`` and ``metrics.json`` are read here; the weights are loaded when a clip is
scored, by the same :func:`thne.predict.pipeline.predict` that ``thne predict`` calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thne.errors import InputError
from thne.evaluate.grid import read_json_object
from thne.predict.explain import has_attention
from thne.predict.extract import can_extract
from thne.runs import MODEL_FILE, RUN_FILE, RunError, seed_runs

# Where a workflow leaves its variants' trained seeds, under the results folder: the untuned
# runs and the grid search's chosen points (workflow/rules/train.smk, grid.smk).
VARIANT_GLOBS = ("*/runs/*", "*/tuned/*")
# Each seed's test metrics, written by the evaluate rule beside the run.
TEST_METRICS = "metrics.json"
# The metrics shown beside a run, in the paper's order (Table 2).
SHOWN_METRICS = ("mae", "corr", "acc7", "acc2_non0", "f1_non0")


@dataclass(frozen=True)
class RunChoice:
    """One thing to score with: a run (one seed) or an ensemble (a variant's seeds)."""

    label: str
    dirs: tuple[Path, ...]
    dataset: str
    variant: str
    seeds: tuple[int, ...]
    # The mean of the seeds' own test metrics (SHOWN_METRICS), not the ensemble's; empty where
    # none was written.
    metrics: dict[str, float]
    # Whether predict can make the run's features from media (not imported ones).
    scores_media: bool
    # Whether the variant has Eq. 2's text-guided attention, which --explain draws.
    explains: bool
    # How the run's features and tokens were made (run.json): runs alike share an extraction.
    provenance: dict = field(default_factory=dict, compare=False)
    # The variant's folder, scored as ``thne predict --ensemble`` scores it; None for one run.
    ensemble: Path | None = None

    def describe(self) -> str:
        """One line: dataset, variant, seeds and test metrics."""
        seeds = ", ".join(map(str, self.seeds))
        shown = (
            ", ".join(f"{k} {self.metrics[k]:.3f}" for k in SHOWN_METRICS if k in self.metrics)
            or "no test metrics"
        )
        notes = "" if self.scores_media else "; trained on imported features, cannot score media"
        return f"{self.dataset}, {self.variant}, seed(s) {seeds}: test {shown}{notes}"


def _dataset(run_dir: Path) -> str:
    """``<ds>`` of ``results/<ds>/<runs|tuned>/<variant>/seed<n>``, else the folder above."""
    parents = run_dir.resolve().parents
    return parents[2].name if len(parents) > 2 else "?"


def _choice(label: str, dirs: Sequence[Path], ensemble: Path | None = None) -> RunChoice:
    infos = [read_json_object(d / RUN_FILE) for d in dirs]
    config = infos[0].get("config", {})
    metrics = [read_json_object(d / TEST_METRICS) for d in dirs if (d / TEST_METRICS).is_file()]
    mean = {
        k: float(np.mean([m[k] for m in metrics]))
        for k in SHOWN_METRICS
        if metrics and all(isinstance(m.get(k), int | float) for m in metrics)
    }
    return RunChoice(
        label=label,
        dirs=tuple(dirs),
        dataset=_dataset(dirs[0]),
        variant=str(config.get("variant", dirs[0].parent.name)),
        seeds=tuple(int(i.get("config", {}).get("seed", -1)) for i in infos),
        metrics=mean,
        scores_media=all(can_extract(i.get("provenance", {})) for i in infos),
        explains=has_attention(str(config.get("model")), bool(config.get("deno1"))),
        provenance=infos[0].get("provenance", {}),
        ensemble=ensemble,
    )


def _name(path: Path, results: Path | None) -> str:
    try:
        return str(path.resolve().relative_to(results.resolve())) if results else str(path)
    except ValueError:
        return str(path)


def run_choice(run_dir: str | os.PathLike, results: Path | None = None) -> RunChoice:
    """One seed: ``results/<ds>/runs/<variant>/seed<n>`` (as ``thne predict --run``)."""
    path = Path(run_dir)
    if not (path / MODEL_FILE).is_file() or not (path / RUN_FILE).is_file():
        raise RunError(f"{path}: no {MODEL_FILE} and {RUN_FILE} in it (a finished run directory?)")
    return _choice(_name(path, results), [path])


def ensemble_choice(variant_dir: str | os.PathLike, results: Path | None = None) -> RunChoice:
    """Every finished seed of a variant (as ``thne predict --ensemble``)."""
    path = Path(variant_dir)
    return _choice(f"{_name(path, results)} (all seeds)", seed_runs(path), ensemble=path)


def find_choices(results: str | os.PathLike) -> tuple[list[RunChoice], list[str]]:
    """Every variant under ``results`` (VARIANT_GLOBS) with finished seeds: the variant as an
    ensemble when it has more than one, then each seed; and, one line each, the variants and
    seeds that cannot be offered, with the reason."""
    root = Path(results)
    variants = sorted({p for g in VARIANT_GLOBS for p in root.glob(g) if p.is_dir()})
    choices: list[RunChoice] = []
    skipped: list[str] = []
    for variant in variants:
        try:
            seeds = seed_runs(variant)
        except RunError:
            continue  # no finished seed: nothing trained there yet
        if len(seeds) > 1:
            try:
                choices.append(ensemble_choice(variant, root))
            except InputError as exc:
                skipped.append(str(exc))
        for seed in seeds:
            try:
                choices.append(run_choice(seed, root))
            except InputError as exc:
                skipped.append(str(exc))
    return choices, skipped


def given_choices(
    runs: Iterable[str | os.PathLike] = (), ensembles: Iterable[str | os.PathLike] = ()
) -> list[RunChoice]:
    """The runs and ensembles named on the command line (``--run``, ``--ensemble``)."""
    return [ensemble_choice(e) for e in ensembles] + [run_choice(r) for r in runs]
