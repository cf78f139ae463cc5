"""Lineage: a fingerprint of the config and code behind each result, for its rule's params.

Snakemake reruns a job whose params changed, and then the jobs it needs, even where the files
in between are missing. Each rule's ``lineage`` param is the digest of its own config values
and code and of the lineage of every step upstream of it, so a change anywhere above a result
reruns it. Without it, a retrain cut off by a time limit (its outputs deleted, the checkpoint
kept) leaves the old config's metrics.json looking current.

Only config and code are followed. Data reaches downstream through file dates, and the shard
rules read the manifest as ancient() with a fingerprint of their own clips and media, so a
change to one video reruns its shard, not every shard (that is why no shard's lineage holds
ingest's). Where a file is downloaded from is in no lineage: a new download is seen by its
date.

:data:`STEPS` declares each step once, under its rule's name: the stage module whose code it
runs, its own config values, and its upstream jobs. ``tests/test_workflow_dag.py`` walks the
real DAG of the headline targets and fails where a rule's inputs come from other jobs than
its step's upstream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from thne.workflow.config import is_imported
from thne.workflow.paths import grid_variants
from thne.workflow.predict import predict_entry, predict_seeds
from thne.workflow.runs import computed_values, resolve_run
from thne.workflow.sources import is_url

MODALITIES = ("audio", "visual")
# The steps that write a dataset's manifest: from media, or from a published feature set.
DATA_STEPS = ("ingest", "import_features")
# Steps whose upstream is the grid points the selections chose (Lineage.chosen).
CHOSEN_STEPS = ("tuned_variants", "grid_report")
# Source keys that say where a dataset is fetched from, not which data it is.
FETCH_KEYS = ("url", "mirrors")


class Job(NamedTuple):
    """A step for one dataset, and where it has them a modality, a variant, a grid point
    (its (key, value) pairs) and a predict: entry. Seeds and shards share their step's
    lineage: they differ in data, not in config or code."""

    step: str
    ds: str
    modality: str | None = None
    variant: str | None = None
    point: tuple | None = None
    entry: str | None = None

    @classmethod
    def of(cls, step: str, wildcards: Mapping[str, str], point: tuple | None = None) -> Job:
        """The job of ``step`` with a rule's wildcards (``name``: a predict: entry)."""
        get = wildcards.get
        return cls(step, wildcards["ds"], get("modality"), get("variant"), point, get("name"))


@dataclass(frozen=True)
class Step:
    """``stage``: the module under thne/stages whose code the step runs (its ``thne``
    command: the stage's name with - for _); ``own(lineage, job)``: the config values the
    step reads itself; ``upstream(lineage, job)``: the jobs whose results it reads, each a Job
    or a list of them (the digest keeps that grouping); ``by_date``: steps whose results it
    reads but follows by their dates and a fingerprint of its own instead (the shards read
    the manifest as ancient())."""

    stage: str
    own: Callable[[Lineage, Job], list]
    upstream: Callable[[Lineage, Job], list]
    by_date: tuple[str, ...] = ()


def digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def point_key(point: Mapping | None) -> tuple | None:
    """A grid point as a Job holds it: its (key, value) pairs."""
    return tuple(point.items()) if point else None


class Lineage:
    """The lineage of every job of a resolved config. ``code`` fingerprints a stage module
    (:class:`thne.imports.PackageCode`); ``chosen(ds, variant)`` is the grid point a
    selection chose (the workflow reads it from best.json), for the tuned steps."""

    def __init__(
        self,
        config: Mapping,
        code: Callable[..., str],
        chosen: Callable[[str, str], Mapping] | None = None,
    ) -> None:
        self.config = config
        self.code = code
        self.chosen = chosen
        self._done: dict[Job, str] = {}

    def __call__(self, job: Job) -> str:
        if job in self._done:
            return self._done[job]
        step = STEPS[job.step]
        ups = [
            [self(j) for j in up] if isinstance(up, list) else self(up)
            for up in step.upstream(self, job)
        ]
        value = digest(*step.own(self, job), *ups)
        # A step that reads the chosen grid points is not kept: a selection made again in
        # this process may choose another point.
        if job.step not in CHOSEN_STEPS:
            self._done[job] = value
        return value

    def upstream(self, job: Job) -> set[Job]:
        """The jobs ``job``'s lineage follows directly."""
        ups = STEPS[job.step].upstream(self, job)
        return {j for up in ups for j in (up if isinstance(up, list) else [up])}

    # What steps read of the config.
    def section(self, job: Job) -> Mapping:
        return self.config["datasets"][job.ds]

    def data(self, ds: str) -> Job:
        """The step that writes a dataset's manifest and splits."""
        return Job(DATA_STEPS[is_imported(self.config, ds)], ds)

    def features(self, ds: str, modality: str) -> Job:
        """The step that writes a dataset's features of ``modality``."""
        if is_imported(self.config, ds):
            return self.data(ds)
        return Job("merge_features", ds, modality)

    def all_features(self, ds: str) -> list[Job]:
        return [self.features(ds, m) for m in MODALITIES]


def source_identity(section: Mapping) -> dict:
    """The source keys that say which data a dataset is, without where it is fetched from."""
    return {
        key: value
        for key, value in section["source"].items()
        if key not in FETCH_KEYS and not key.endswith("sha256") and not is_url(value)
    }


def _data_own(lin: Lineage, job: Job) -> list:
    section = lin.section(job)
    own = [lin.code(job.step), source_identity(section)]
    if job.step == "ingest" and not section["source"].get("raw_dir"):
        own.append(lin.code("unpack"))
    return [own, section["on_bad_clip"], section.get("base")]


def _shard_own(modality: str, predict: bool = False) -> Callable[[Lineage, Job], list]:
    def own(lin: Lineage, job: Job) -> list:
        section = lin.section(job)
        values = [lin.code(modality), section[modality], section["shard_size"]]
        if predict:
            # A predict shard runs OpenFace inside thne visual, under the entry's policy.
            entry = predict_entry(lin.config, job.ds, job.entry)
            return [values, entry["on_bad_clip"]]
        if modality == "visual" and section["visual"]["extractor"] == "openface":
            values += [
                lin.code(None, "thne/features/openface_run.sh"),
                lin.code("openface_plan"),
            ]
        return [values, section["on_bad_clip"]]

    return own


def _code(lin: Lineage, job: Job) -> list:
    return [lin.code(STEPS[job.step].stage)]


def _code_seeds(lin: Lineage, job: Job) -> list:
    return [lin.code(STEPS[job.step].stage), lin.section(job)["train"]["seeds"]]


def _bootstrap_own(lin: Lineage, job: Job) -> list:
    """A comparison's code, the seeds it compares and what its bootstrap draws."""
    section = lin.section(job)
    return [*_code_seeds(lin, job), section["evaluate"]["bootstrap_unit"]]


def _train_own(lin: Lineage, job: Job) -> list:
    point = dict(job.point) if job.point else None
    cfg = resolve_run(lin.config, job.ds, job.variant, point)
    return [lin.code("train"), computed_values(cfg, lin.section(job)["train"]["device"])]


def _train_up(lin: Lineage, job: Job) -> list:
    ds = job.ds
    stats = [Job("feature_stats", ds, m) for m in MODALITIES]
    return [[lin.data(ds), Job("tokenize", ds), *lin.all_features(ds), *stats]]


def _grid_runs(lin: Lineage, job: Job) -> list:
    from thne.grid import grid_points

    points = grid_points(lin.section(job)["grid"]["axes"]).values()
    return [[Job("train", job.ds, variant=job.variant, point=point_key(p)) for p in points]]


def figure_variants(config: Mapping, ds: str) -> list[str]:
    """The variants of Figure 3: (a) t-HNE and, where trained, (b) the Eq. 10 residual."""
    trained = config["datasets"][ds]["train"]["variants"]
    return [v for v in ("thne", "residual") if v in trained] or ["thne"]


def _tuned(lin: Lineage, job: Job, variant: str) -> Job:
    point = point_key(lin.chosen(job.ds, variant))
    return Job("evaluate", job.ds, variant=variant, point=point)


def _predict_own(lin: Lineage, job: Job) -> list:
    return [lin.code("predict"), predict_seeds(lin.config, job.ds, job.entry)]


def _predict_up(lin: Lineage, job: Job) -> list:
    variant = predict_entry(lin.config, job.ds, job.entry)["variant"]
    merged = [Job("predict_merge", job.ds, m, entry=job.entry) for m in MODALITIES]
    return [Job("train", job.ds, variant=variant), merged]


def _none(lin: Lineage, job: Job) -> list:
    return []


STEPS: dict[str, Step] = {
    "ingest": Step("ingest", _data_own, _none),
    "import_features": Step("import_features", _data_own, _none),
    "audio_shard": Step("audio", _shard_own("audio"), _none, by_date=DATA_STEPS),
    "visual_shard": Step("visual", _shard_own("visual"), _none, by_date=DATA_STEPS),
    "merge_features": Step("merge", _code, lambda lin, j: [Job(f"{j.modality}_shard", j.ds)]),
    "feature_stats": Step(
        "stats", _code, lambda lin, j: [lin.data(j.ds), lin.features(j.ds, j.modality)]
    ),
    "tokenize": Step(
        "text",
        lambda lin, j: [lin.code("text"), lin.section(j)["text"]],
        lambda lin, j: [lin.data(j.ds)],
    ),
    "train": Step("train", _train_own, _train_up),
    "evaluate": Step("evaluate", _code, lambda lin, j: [j._replace(step="train")]),
    "aggregate": Step(
        "aggregate", _code_seeds, lambda lin, j: [Job("evaluate", j.ds, variant="thne")]
    ),
    "variants": Step(
        "variants",
        _bootstrap_own,
        lambda lin, j: [
            [Job("evaluate", j.ds, variant=v) for v in lin.section(j)["train"]["variants"]],
            lin.data(j.ds),  # the manifest: each test clip's video
        ],
    ),
    "table": Step(
        "table",
        _code,
        lambda lin, j: [Job("aggregate", j.ds), Job("variants", j.ds), lin.all_features(j.ds)],
    ),
    "ablation": Step(
        "ablation", _code, lambda lin, j: [Job("variants", j.ds), lin.all_features(j.ds)]
    ),
    "loss_curves": Step(
        "loss_curves",
        _code_seeds,
        lambda lin, j: [[Job("train", j.ds, variant=v) for v in figure_variants(lin.config, j.ds)]],
    ),
    "report_figures": Step(
        "report_figures",
        _code_seeds,
        lambda lin, j: [
            Job("variants", j.ds),
            [Job("train", j.ds, variant=v) for v in lin.section(j)["train"]["variants"]],
            lin.data(j.ds),
        ],
    ),
    "cases": Step(
        "cases",
        _code_seeds,
        lambda lin, j: [Job("train", j.ds, variant="thne"), lin.data(j.ds)],
    ),
    "clip_page": Step(
        "clip_page",
        _code_seeds,
        lambda lin, j: [
            [Job("train", j.ds, variant=v) for v in lin.section(j)["train"]["variants"]],
            lin.data(j.ds),
        ],
    ),
    "report_pages": Step(
        "report_pages",
        _code,
        lambda lin, j: [
            [
                *(
                    Job(s, j.ds)
                    for s in ("table", "ablation", "cases", "loss_curves", "report_figures")
                ),
                Job("clip_page", j.ds),
                lin.data(j.ds),
            ],
            lin.all_features(j.ds),
        ],
    ),
    "grid_select": Step(
        "grid_select",
        lambda lin, j: [lin.code("grid_select"), lin.section(j)["grid"]["seeds"]],
        _grid_runs,
    ),
    "tuned_variants": Step(
        "variants",
        _bootstrap_own,
        lambda lin, j: [
            [_tuned(lin, j, v) for v in grid_variants(lin.config, j.ds)],
            lin.data(j.ds),
        ],
    ),
    "grid_report": Step(
        "grid_report",
        lambda lin, j: [
            lin.code("grid_report"),
            lin.section(j).get("base") or j.ds,
            lin.section(j)["train"]["seeds"],
            lin.section(j)["evaluate"]["bootstrap_unit"],
        ],
        lambda lin, j: [
            Job("tuned_variants", j.ds),
            lin.data(j.ds),
            [Job("grid_select", j.ds, variant=v) for v in grid_variants(lin.config, j.ds)],
            [Job("evaluate", j.ds, variant=v) for v in grid_variants(lin.config, j.ds)],
        ],
    ),
    "predict_audio_shard": Step("audio", _shard_own("audio", predict=True), _none),
    "predict_visual_shard": Step("visual", _shard_own("visual", predict=True), _none),
    "predict_merge": Step(
        "merge", _code, lambda lin, j: [Job(f"predict_{j.modality}_shard", j.ds, entry=j.entry)]
    ),
    "predict": Step("predict", _predict_own, _predict_up),
}

# Rules that run another rule's step at other paths (use rule ... with:).
RULE_STEPS = {
    "grid_train": "train",
    "tuned_train": "train",
    "tuned_evaluate": "evaluate",
    "predict_explain": "predict",
}
# Rules with no lineage: the downloads and unpacking (what they fetch is seen by its date),
# OpenFace's plan and runs (the visual shards' lineage holds their code), and the clips of a
# predict: entry (seen by the dates and fingerprints of the shards that read them).
NO_LINEAGE = (
    "download_archive",
    "download_labels",
    "download_sequence",
    "unpack_archive",
    "openface_plan",
    "openface_shard",
    "predict_clips",
)


def step_of(rule: str) -> str | None:
    """The lineage step a rule runs (None for the rules of NO_LINEAGE)."""
    if rule in NO_LINEAGE:
        return None
    return RULE_STEPS.get(rule, rule)
