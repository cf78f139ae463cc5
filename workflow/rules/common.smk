import functools
import json
import os
import shlex

from snakemake.exceptions import WorkflowError

from thne.grid import POINT_PATTERN
from thne.imports import PackageCode
from thne.workflow import paths, predict, runs, shards, sources
from thne.workflow.config import ConfigError, dataset_view, grids
from thne.workflow.config import is_imported, resolve_config
from thne.workflow.lineage import STEPS, Job, Lineage, figure_variants, point_key

# The config, resolved once (thne/workflow/config.py): the shipped config under the user's,
# base: sections, variants, the schema's defaults and checks, grids.
try:
    resolve_config(config, workflow.basedir)
except ConfigError as _error:
    raise WorkflowError(str(_error)) from None

DATASETS = sorted(config["datasets"])
SHARD_FILE = "features/{ds}/shards/{modality}/{shard}.h5"
PREDICT_SHARD_FILE = "features/{ds}/predict/{name}/shards/{modality}/{shard}.h5"
GRIDS = grids(config)
IMPORTED = [ds for ds in DATASETS if is_imported(config, ds)]
EXTRACTED = [ds for ds in DATASETS if ds not in IMPORTED]


wildcard_constraints:
    ds="|".join(DATASETS),
    point=POINT_PATTERN,
    modality="audio|visual",
    shard=r"\d+",
    variant="[a-z0-9_]+",
    seed=r"\d+",


def one_of(names):
    """A wildcard pattern matching exactly ``names`` (none: matching nothing)."""
    return "|".join(names) if names else "(?!)"


def dataset(*keys, join=False):
    """A params function: the job's dataset's config value under ``keys`` (a list
    comma-joined for a flag, with ``join``)."""

    def of_job(wildcards):
        value = config["datasets"][wildcards.ds]
        for key in keys:
            value = value[key]
        return ",".join(map(str, value)) if join else value

    return of_job


# The package's code, read once per Snakefile parse (every job parses this file again); each
# module's parse is kept in .snakemake/, by the hash of its bytes.
THNE_CODE = PackageCode(workflow.basedir, cache=".snakemake/thne-code.json")


@functools.cache
def stage_code(stage, *files):
    """Fingerprint of the code a job runs, thne/stages/<stage>.py and every thne module it
    imports, directly or through others, and ``files`` (non-Python files it runs, from the
    repository root), hashed byte for byte. Snakemake does not see code in a package called
    from shell:; the syntax tree is hashed, so comment and formatting edits rerun nothing.
    """
    if stage is None:
        return THNE_CODE.fingerprint_files(files)
    return THNE_CODE.fingerprint(f"thne.stages.{stage}", extra_files=files)


def code_of(step):
    """A rule's ``code`` param: its step's stage code (lineage holds it too, but params are
    compared whole: dropping it would rerun every finished job once)."""
    return stage_code(STEPS[step].stage)


# Checkpoints: what is known once ingest, predict-clips and grid-select have run.
def manifest(wildcards):
    return checkpoints.ingest.get(ds=wildcards.ds).output.manifest


def predict_manifest(wildcards):
    return checkpoints.predict_clips.get(
        ds=wildcards.ds, name=wildcards.name
    ).output.manifest


def chosen_point(ds, variant):
    """The point grid-select chose for ``variant``, from its best.json. The tuned runs take it
    through their params, not best.json as an input: they rerun when the choice changes, not
    each time the selection is redone (grid_select is a checkpoint: planned after it).
    """
    best = checkpoints.grid_select.get(ds=ds, variant=variant).output[0]
    with open(best) as handle:
        return json.load(handle)["point"]


def chosen(wildcards):
    return chosen_point(wildcards.ds, wildcards.variant)


def tuned_inputs(wildcards):
    chosen(wildcards)  # planned after the selection
    return paths.train_inputs(wildcards.ds)


def grid_point(wildcards):
    return paths.grid_point(GRIDS, wildcards.ds, wildcards.point)


LINEAGE = Lineage(config, stage_code, chosen_point)


def lineage_of(step, point=None):
    """A params function: the lineage of ``step`` for the job's wildcards, at the grid point
    ``point(wildcards)`` gives, if any (thne/workflow/lineage.py)."""

    def of_job(wc):
        where = point_key(point(wc)) if point else None
        return LINEAGE(Job.of(step, dict(wc.items()), where))

    return of_job


def gathering(output, files_of):
    """An input function: ``files_of(wildcards)``, the runs a result gathers. Where the result
    (``output``, a pattern) exists but some of them are gone, its job is forced, so they are
    made again before it (Snakemake alone takes it as up to date and plans nothing)."""

    def of_job(wc):
        files, result = files_of(wc), output.format(**dict(wc.items()))
        if os.path.exists(result) and not all(map(os.path.exists, files)):
            workflow.dag.forcefiles.add(result)
        return files

    return of_job


def download_flags(wildcards, url_key, mirrors_key, sha256_key):
    """Flags of `thne download` for source.<url_key>: the name and signature the download
    rules' run: blocks call (their text is their code; an edit would rerun a download).
    """
    return sources.download_flags(config, wildcards.ds, url_key, mirrors_key)
