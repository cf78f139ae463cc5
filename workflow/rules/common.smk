import copy
import functools
import hashlib
import json
import os
import shlex
from pathlib import Path

import yaml
from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from thne.devices import SLOTS_PER_GPU, visible_gpus
from thne.grid import NOT_COMPUTED, POINT_PATTERN, check_axes, grid_points
from thne.imports import PackageCode
from thne.variants import LOSS_WEIGHTS, SHIPPED_VARIANTS, with_shipped

# Sections a user's config replaces as a whole: a dataset's source, and a grid's axes. Merged
# key by key, the shipped raw_dir would sit beside a user's url or archive and win over it, and
# the shipped axes would be searched beside the user's.
WHOLE_SECTIONS = ("source", "axes")


def fill_defaults(user, defaults):
    """Deep-merge the shipped defaults under the user's values, in place.

    This is the only place the shipped config is read (the Snakefile has no configfile:
    directive, which would deep-merge it into the user's before this runs), so a ``source:``
    the user gives replaces the shipped one whole, from the repository root as with
    --directory. A user's file stays as short as the keys it changes (e.g. only
    datasets.mosi.train.seeds).
    """
    for key, value in defaults.items():
        if key not in user:
            user[key] = value
        elif (
            isinstance(value, dict)
            and isinstance(user[key], dict)
            and key not in WHOLE_SECTIONS
        ):
            fill_defaults(user[key], value)
    return user


def inherit_bases(datasets):
    """Fill each section with ``base: <name>`` from that section, in place: ``mosi_sdk`` with
    ``base: mosi`` keeps mosi's hyper-parameters, folds and paper rows. The base's source is
    taken only where the layout is the same; another layout has other source keys.
    """
    for name, section in datasets.items():
        base = section.get("base")
        if base is None:
            continue
        if base not in datasets or base == name or "base" in datasets[base]:
            raise ValueError(
                f"datasets.{name}.base: {base!r} must name another section without a base "
                f"(sections: {', '.join(sorted(datasets))})"
            )
        parent = copy.deepcopy(datasets[base])
        layout = section.get("source", {}).get("layout")
        if layout not in (None, parent["source"]["layout"]):
            parent["source"] = {"dataset": parent["source"].get("dataset", base)}
        fill_defaults(section, parent)
    return datasets


fill_defaults(
    config, yaml.safe_load(Path(workflow.basedir, "config/config.yaml").read_text())
)
inherit_bases(config["datasets"])
for _name, _entry in (config.get("variants") or {}).items():
    if _name not in SHIPPED_VARIANTS:
        continue
    _changed = sorted(
        key
        for key, value in (_entry or {}).items()
        if key not in LOSS_WEIGHTS and SHIPPED_VARIANTS[_name].get(key) != value
    )
    if _changed:
        # The name means its switches (thne train --variant, the tables): caught here, not in
        # the training job after the features are built.
        raise WorkflowError(
            f"variants.{_name}: a shipped variant's entry may change its loss weights "
            f"({', '.join(LOSS_WEIGHTS)}) only, not {', '.join(_changed)}; give the variant "
            "a name of its own"
        )
config["variants"] = with_shipped(config.get("variants"))
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as _error:
    # Snakemake's message puts the schema dump first; the key path is what a user needs.
    _cause = _error.__context__
    if not isinstance(_cause, ValidationError):
        raise
    _where = ".".join(["config", *map(str, _cause.absolute_path)])
    raise WorkflowError(f"{_where}: {_cause.message}") from None


DATASETS = sorted(config["datasets"])
SWITCHES = ("deno1", "deno2", "recovery", "residual", "multimodal")

for _ds in DATASETS:
    _unknown = sorted(
        set(config["datasets"][_ds]["train"]["variants"]) - set(config["variants"])
    )
    if _unknown:
        raise ValueError(
            f"datasets.{_ds}.train.variants names {', '.join(_unknown)}, not defined under "
            f"variants: (defined: {', '.join(config['variants'])})"
        )


# Each dataset's grid search (grid.smk): its points by folder name, in the grid's order.
GRIDS = {}
for _ds in DATASETS:
    _grid = config["datasets"][_ds].get("grid")
    if _grid is None:
        continue
    _where = f"datasets.{_ds}.grid"
    try:
        check_axes(_grid["axes"], config["datasets"][_ds]["train"], f"{_where}.axes")
    except ValueError as _error:
        raise WorkflowError(str(_error)) from None
    _unknown = sorted(set(_grid["variants"]) - set(config["variants"]))
    if _unknown:
        raise WorkflowError(
            f"{_where}.variants names {', '.join(_unknown)}, not defined under variants:"
        )
    if "thne" not in _grid["variants"]:
        raise WorkflowError(
            f"{_where}.variants: list thne too; every tuned variant is compared with tuned "
            "t-HNE (results/{ds}/tuned/variants.json)"
        )
    GRIDS[_ds] = grid_points(_grid["axes"])


wildcard_constraints:
    ds="|".join(DATASETS),
    point=POINT_PATTERN,
    modality="audio|visual",
    shard=r"\d+",
    variant="[a-z0-9_]+",
    seed=r"\d+",


def ds_config(wildcards, section):
    return config["datasets"][wildcards.ds][section]


# The package's code, read once per Snakefile parse (every job parses this file again).
THNE_CODE = PackageCode(workflow.basedir)


@functools.cache
def stage_code(stage, *files):
    """Fingerprint of the code a rule runs, for its params. The code is the stage module
    thne/stages/<stage>.py and every thne module it imports, directly or through others.

    Snakemake does not see code in a package called from shell:, so each rule carries this
    param: a change to what that code does reruns the rule, and an import added to it is
    followed without a rule edit. The syntax tree is hashed, so comment and formatting edits
    rerun nothing. ``files`` are non-Python files the rule runs (paths from the repository
    root), hashed byte for byte.
    """
    return THNE_CODE.fingerprint(f"thne.stages.{stage}", extra_files=files)


def file_code(path):
    """Fingerprint of a non-Python file a rule runs (path from the repository root)."""
    return THNE_CODE.fingerprint_files([path])


def is_url(value):
    return str(value).startswith(("http://", "https://"))


def source_of(wildcards):
    return ds_config(wildcards, "source")


def cmu_dataset(wildcards):
    """Which dataset a section is (mosi, mosei, ...): its folds and its rows in the paper."""
    return source_of(wildcards).get("dataset") or paper_dataset(wildcards)


def paper_dataset(wildcards):
    return config["datasets"][wildcards.ds].get("base") or wildcards.ds


# Sources that are published feature sets: an import rule writes their manifest and feature
# files; the others are ingested from media and their features extracted.
IMPORT_LAYOUTS = ("sdk", "mmim", "mmsa_pkl")
IMPORTED = [
    ds
    for ds in DATASETS
    if config["datasets"][ds]["source"]["layout"] in IMPORT_LAYOUTS
]
EXTRACTED = [ds for ds in DATASETS if ds not in IMPORTED]


def one_of(names):
    """A wildcard pattern matching exactly ``names`` (none: matching nothing)."""
    return "|".join(names) if names else "(?!)"


def raw_dir(wildcards):
    """The unpacked copy: the user's raw_dir, or where the unpack rule puts the archive."""
    return source_of(wildcards).get("raw_dir") or f"data/{wildcards.ds}/raw"


def archive_path(wildcards):
    source = source_of(wildcards)
    if source.get("archive"):
        return source["archive"]
    if not source.get("url"):
        raise ValueError(
            f"datasets.{wildcards.ds}.source: give raw_dir, archive or url to find the dataset"
        )
    return f"data/{wildcards.ds}/download/archive"


def labels_path(wildcards):
    labels = source_of(wildcards).get("labels")
    if not labels:
        raise ValueError(
            f"datasets.{wildcards.ds}.source.labels: CMU-MOSEI needs the labels file "
            "(CMU_MOSEI_Labels.csd), as a URL or a local path"
        )
    return f"data/{wildcards.ds}/download/labels.csd" if is_url(labels) else labels


def ingest_inputs(wildcards):
    """The unpacked copy, and for a user's own raw_dir its annotation files, whose dates
    Snakemake sees (a folder's own date does not change when a file inside it is edited).
    """
    source = source_of(wildcards)
    inputs = {"raw": raw_dir(wildcards)}
    if source.get("raw_dir"):
        from thne.data.ingest import annotation_files

        inputs["annotations"] = annotation_files(
            source["layout"], source["raw_dir"], dataset=cmu_dataset(wildcards)
        )
    if source["layout"] == "cmu" and cmu_dataset(wildcards) == "mosei":
        inputs["labels"] = labels_path(wildcards)
    return inputs


def ingest_flags(wildcards, input):
    flags = (
        f"--layout {source_of(wildcards)['layout']} --dataset {cmu_dataset(wildcards)}"
    )
    if "labels" in input.keys():
        flags += f" --labels {shlex.quote(str(input.labels))}"
    return flags


def corrupt_flag(wildcards):
    """Only an archive this workflow downloaded is moved aside when corrupt, never a user's."""
    return "" if source_of(wildcards).get("archive") else "--move-corrupt-aside"


def download_flags(wildcards, url_key, mirrors_key, sha256_key):
    """Flags of `thne download` for the URL under source.<url_key>; a failed download then
    names the config keys that avoid it."""
    source = source_of(wildcards)
    mirrors = source.get(mirrors_key, []) if mirrors_key else []
    flags = [
        f"--url {shlex.quote(source[url_key])}",
        f"--config-key datasets.{wildcards.ds}.source.{url_key}",
        *(f"--mirror {shlex.quote(m)}" for m in mirrors),
    ]
    if source.get(sha256_key):
        flags.append(f"--sha256 {source[sha256_key]}")
    return " ".join(flags)


def shard_threads(wildcards):
    return config["datasets"][wildcards.ds].get("shard_threads", 2)


def visual_inputs(wildcards):
    """The manifest, and for OpenFace the shard's plan and finished run. The manifest and plan
    are ancient(): the shard's own clips and media decide (shard_media)."""
    inputs = {"manifest": ancient(f"data/{wildcards.ds}/manifest.tsv")}
    if ds_config(wildcards, "visual")["extractor"] == "openface":
        inputs["plan"] = ancient(f"features/{wildcards.ds}/openface/plan")
        inputs["run"] = f"features/{wildcards.ds}/openface/run/{wildcards.shard}"
    return inputs


def openface_flags(wildcards, input):
    visual = ds_config(wildcards, "visual")
    if visual["extractor"] != "openface":
        return ""
    return (
        f"--openface-groups {','.join(visual['openface_groups'])}"
        f" --openface-run {shlex.quote(input.run)}"
        f" --openface-plan {shlex.quote(f'{input.plan}/{wildcards.shard}.tsv')}"
        f" --openface-log logs/{wildcards.ds}/openface/shard{wildcards.shard}.log"
    )


@functools.cache
def manifest_clips(path, mtime_ns):
    from thne.data.manifest import read_manifest

    return read_manifest(path)


@functools.cache
def manifest_shards(path, mtime_ns, shard_size):
    """Every shard's clips, split once per parse: a MOSEI plan asks for 600 shards' clips."""
    from thne.data.shards import all_shards

    return all_shards(manifest_clips(path, mtime_ns), shard_size)


def clips_of_shard(manifest, wildcards):
    from thne.data.shards import pick_shard

    shards = manifest_shards(
        manifest,
        os.stat(manifest).st_mtime_ns,
        config["datasets"][wildcards.ds]["shard_size"],
    )
    return pick_shard(shards, int(wildcards.shard))


def media_stamp(path):
    """Size and modification time of a media file: what changes when it is replaced, restored
    from a backup or re-encoded (a restored copy can be older than the features)."""
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def shard_media(wildcards):
    """Fingerprint of a shard's clips and of the media files they read, as a param.

    Shard jobs take the manifest as ancient(): a new manifest reruns only the shards whose
    clips or media changed, not all of them, and a media file changed in place reruns the
    shards that hold it.
    """
    manifest = checkpoints.ingest.get(ds=wildcards.ds).output.manifest
    return clips_fingerprint(clips_of_shard(manifest, wildcards))


def clips_fingerprint(clips):
    digest = hashlib.sha256()
    for clip in clips:
        row = (clip.clip_id, clip.start, clip.end, clip.media, media_stamp(clip.media))
        digest.update("\t".join(map(str, row)).encode() + b"\n")
    return digest.hexdigest()[:16]


MEDIA_SUFFIXES = (
    ".mp4",
    ".avi",
    ".mkv",
    ".mov",
    ".webm",
    ".flv",
    ".wav",
    ".mp3",
    ".m4a",
)


@functools.cache
def raw_media(raw):
    """Fingerprint of every media file under a user's raw_dir, as a param of ingest: a file
    put back, replaced or re-encoded changes which clips ingest keeps. One scan per parse.
    """
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(raw)):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(MEDIA_SUFFIXES):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, raw)
                digest.update(f"{rel}\t{media_stamp(path)}\n".encode())
    return digest.hexdigest()[:16]


def ingest_media(wildcards):
    raw = source_of(wildcards).get("raw_dir")
    # An unpacked download is never edited in place; a user's own copy may be.
    return raw_media(raw) if raw else ""


def shard_files(wildcards):
    """One feature file per shard of videos; how many follows from the ingested manifest."""
    from thne.data.manifest import read_manifest
    from thne.data.shards import n_shards

    manifest = checkpoints.ingest.get(ds=wildcards.ds).output.manifest
    size = config["datasets"][wildcards.ds]["shard_size"]
    return expand(
        "features/{ds}/shards/{modality}/{shard}.h5",
        ds=wildcards.ds,
        modality=wildcards.modality,
        shard=range(n_shards(read_manifest(manifest), size)),
    )


def train_inputs(wildcards):
    ds = wildcards.ds
    return {
        "manifest": f"data/{ds}/manifest.tsv",
        "text": f"features/{ds}/text.h5",
        "audio": f"features/{ds}/audio.h5",
        "visual": f"features/{ds}/visual.h5",
        "audio_stats": f"features/{ds}/audio.stats.json",
        "visual_stats": f"features/{ds}/visual.stats.json",
    }


def seed_runs(wildcards, filename, variant=None):
    seeds = ds_config(wildcards, "train")["seeds"]
    return expand(
        "results/{ds}/runs/{variant}/seed{seed}/{filename}",
        ds=wildcards.ds,
        variant=variant or wildcards.variant,
        seed=seeds,
        filename=filename,
    )


def train_gpus(wildcards):
    """1 for a job that trains on a GPU of this machine: device cuda, or auto where this
    machine has a GPU. The SLURM profile replaces it (set-resources) with the GPUs a job asks
    of the cluster's nodes, whatever the submitting host has.
    """
    device = str(ds_config(wildcards, "train").get("device", "auto"))
    if device.startswith("cuda"):
        return 1
    return 1 if device == "auto" and local_gpus() > 0 else 0


@functools.cache
def local_gpus():
    # Asked only where a training job is planned, and once: every job parses this file again.
    return visible_gpus()


def all_variant_runs(wildcards, filename):
    """``filename`` of every seed of every variant the dataset trains, variant by variant."""
    return [
        path
        for variant in ds_config(wildcards, "train")["variants"]
        for path in seed_runs(wildcards, filename, variant=variant)
    ]


def figure_histories(wildcards):
    variants = [
        v
        for v in ("thne", "residual")
        if v in ds_config(wildcards, "train")["variants"]
    ]
    return [
        path
        for variant in variants or ["thne"]
        for path in seed_runs(wildcards, "history.tsv", variant=variant)
    ]


TRAIN_FLAGS = (
    "batch_size lr bert_lr alpha beta visual_hidden acoustic_hidden fusion_dim dropout"
    " grad_clip weight_decay max_epochs patience max_frames device mi_lr mi_memory"
).split()


def checkpoint_every_s(wildcards):
    """How often a training job saves its state: how a job is carried out, not what it
    computes, so it is a resource of the job, which Snakemake never takes as a reason to
    rerun, and not a param, which it does."""
    return ds_config(wildcards, "train").get("checkpoint_every_s", 600)


def jobs_per_gpu(wildcards):
    """How many training jobs share a GPU: a resource, as it changes how jobs run, not what
    they compute (on SLURM the profile sets it for the grid's packed jobs)."""
    return ds_config(wildcards, "train").get("jobs_per_gpu", 1)


def train_gpu_slots(wildcards):
    """The GPU slots of this machine a training job holds: the profile counts SLOTS_PER_GPU
    per GPU and a job takes SLOTS_PER_GPU / jobs_per_gpu, so that many train on each GPU.
    """
    return SLOTS_PER_GPU // jobs_per_gpu(wildcards) if train_gpus(wildcards) else 0


def train_flags(wildcards):
    return run_flags(wildcards.ds, wildcards.variant)


def run_values(ds, variant, point=None):
    """What a run of ``variant`` trains with: the training values (the dataset's, the
    variant's loss weights, a grid point's over both), its model, and its switches."""
    if variant not in config["variants"]:
        raise ValueError(
            f"variant {variant!r} is not defined under variants: in the config"
        )
    entry = dict(config["variants"][variant] or {})
    model = entry.pop("model", "thne")
    # The dataset's loss weights, unless the variant sets its own (paper section 5.2 lowers
    # alpha for its Eq. 10 model); a grid point's values win over both: they are searched.
    train = {
        **config["datasets"][ds]["train"],
        **{k: entry.pop(k) for k in LOSS_WEIGHTS if k in entry},
        **(point or {}),
    }
    return train, model, entry


def run_flags(ds, variant, point=None):
    """The flags of `thne train` for a run of ``variant`` (run_values)."""
    train, model, entry = run_values(ds, variant, point)
    flags = [
        f"--{key.replace('_', '-')} {train[key]}" for key in TRAIN_FLAGS if key in train
    ]
    flags.append("--bf16" if train.get("bf16", True) else "--no-bf16")
    # The model's own switches (t-HNE's; MMIM has neither DeNo1 nor DeNo2), overridden by
    # the variant's entry.
    switches = {**dict.fromkeys(SWITCHES, True), "residual": False}
    if model == "mmim":
        switches.update(deno1=False, deno2=False)
    switches.update(entry)
    flags.append(f"--model {model}")
    flags += [f"--{name}" if on else f"--no-{name}" for name, on in switches.items()]
    return " ".join(flags)


# Lineage: each result's params carry a fingerprint of the config values and code of its own
# rule and of every rule upstream of it. Snakemake reruns a job whose params changed, and then
# the jobs it needs, even where the files in between are missing. Without it, a retrain cut
# off by a time limit (its outputs deleted, the checkpoint kept) leaves the old config's
# metrics.json looking current: the missing model is not rebuilt while the files after it
# exist and their own params are unchanged.
#
# Only config and code are followed. Data reaches downstream through file dates, and the shard
# rules take the manifest as ancient() with a fingerprint of their own clips and media, so a
# change to one video reruns its shard, not every shard (that is why no shard's lineage holds
# ingest's). Where a file is downloaded from is not in any lineage: a new download is seen by
# its date.
FETCH_KEYS = ("url", "mirrors")


def _digest(*parts):
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_identity(ds):
    """The source keys that say which data a dataset is, without where it is fetched from."""
    return {
        key: value
        for key, value in config["datasets"][ds]["source"].items()
        if key not in FETCH_KEYS and not key.endswith("sha256") and not is_url(value)
    }


def _train_values(ds, variant, point=None):
    """The training values a run of ``variant`` computes with: the dataset's, its variant
    entry's, a grid point's, and the encoder; not seeds or the variant list (other runs), nor
    threads, the checkpoint interval and GPU sharing (how the job runs)."""
    section = config["datasets"][ds]
    values = {k: v for k, v in section["train"].items() if k not in NOT_COMPUTED}
    values = {
        **values,
        "variant": config["variants"].get(variant),
        "encoder": section["text"]["encoder"],
    }
    if point:
        # Only a run of a grid point carries one, so the runs without keep their lineage.
        values["point"] = dict(point)
    return values


@functools.cache
def lineage(ds, step, variant=None, point=None):
    """Fingerprint of the config and code behind ``step``'s result for dataset ``ds``.

    Steps: ``data`` (manifest, splits; for an imported feature set also its features),
    ``shards/<modality>``, ``features/<modality>``, ``stats/<modality>``, ``text``, ``run``
    and ``metrics`` (of ``variant``, at a grid ``point``: a tuple of (key, value) pairs),
    ``aggregate``, ``variants``, ``table``, ``ablation``, ``loss_curves``, ``cases``,
    ``report``; the grid search's ``grid_select`` (of ``variant``), ``tuned_variants`` and
    ``grid_report`` (grid.smk).
    """
    section = config["datasets"][ds]
    kind, _, modality = step.partition("/")
    imported = section["source"]["layout"] in IMPORT_LAYOUTS
    if kind == "data":
        if imported:
            own = [stage_code("import_features"), source_identity(ds)]
        else:
            own = [stage_code("ingest"), source_identity(ds)]
            if not section["source"].get("raw_dir"):
                own.append(stage_code("unpack"))
        return _digest(own, section["on_bad_clip"], section.get("base"))
    if kind == "shards":
        # Its clips and media are the shard's own param (shard_media), not ingest's lineage.
        own = [stage_code(modality), section[modality], section["shard_size"]]
        if modality == "visual" and section["visual"]["extractor"] == "openface":
            own += [
                file_code("thne/features/openface_run.sh"),
                stage_code("openface_plan"),
            ]
        return _digest(own, section["on_bad_clip"])
    if kind == "features":
        if imported:
            return lineage(ds, "data")
        return _digest(stage_code("merge"), lineage(ds, f"shards/{modality}"))
    if kind == "stats":
        return _digest(
            stage_code("stats"),
            lineage(ds, "data"),
            lineage(ds, f"features/{modality}"),
        )
    if kind == "text":
        return _digest(stage_code("text"), section["text"], lineage(ds, "data"))
    if kind == "run":
        upstream = [lineage(ds, "data"), lineage(ds, "text")]
        upstream += [
            lineage(ds, f"{files}/{m}")
            for files in ("features", "stats")
            for m in ("audio", "visual")
        ]
        return _digest(stage_code("train"), _train_values(ds, variant, point), upstream)
    if kind == "metrics":
        return _digest(stage_code("evaluate"), lineage(ds, "run", variant, point))
    if kind == "grid_select":
        runs = [lineage(ds, "run", variant, point_key(p)) for p in GRIDS[ds].values()]
        return _digest(stage_code("grid_select"), section["grid"]["seeds"], runs)
    trained = section["train"]
    if kind == "aggregate":
        return _digest(
            stage_code("aggregate"), trained["seeds"], lineage(ds, "metrics", "thne")
        )
    runs = [lineage(ds, "metrics", v) for v in trained["variants"]]
    if kind == "variants":
        return _digest(stage_code("variants"), trained["seeds"], runs)
    features = [lineage(ds, f"features/{m}") for m in ("audio", "visual")]
    if kind == "table":
        return _digest(
            stage_code("table"),
            lineage(ds, "aggregate"),
            lineage(ds, "variants"),
            features,
        )
    if kind == "ablation":
        return _digest(stage_code("ablation"), lineage(ds, "variants"), features)
    if kind == "loss_curves":
        shown = [v for v in ("thne", "residual") if v in trained["variants"]] or [
            "thne"
        ]
        return _digest(
            stage_code("loss_curves"),
            trained["seeds"],
            [lineage(ds, "run", v) for v in shown],
        )
    if kind == "cases":
        return _digest(
            stage_code("cases"),
            trained["seeds"],
            lineage(ds, "run", "thne"),
            lineage(ds, "data"),
        )
    if kind == "report":
        parts = [
            lineage(ds, s)
            for s in ("table", "ablation", "cases", "loss_curves", "data")
        ]
        return _digest(stage_code("report_pages"), parts, features)
    raise ValueError(f"no lineage for step {step!r}")


def lineage_of(step, variant=False):
    """A params function: the lineage of ``step`` for the job's dataset (and variant)."""
    if "{modality}" in step:
        return lambda wc: lineage(
            wc.ds, step.format(modality=wc.modality), wc.variant if variant else None
        )
    return lambda wc: lineage(wc.ds, step, wc.variant if variant else None)


# The grid search (grid.smk).
def grid_section(wildcards):
    grid = config["datasets"][wildcards.ds].get("grid")
    if grid is None:
        raise WorkflowError(
            f"datasets.{wildcards.ds}.grid: no grid search is configured for this dataset "
            "(config/config.yaml's mosi section has the paper's)"
        )
    return grid


def grid_point(wildcards):
    points = GRIDS.get(wildcards.ds, {})
    if wildcards.point not in points:
        raise WorkflowError(
            f"{wildcards.point}: not a point of datasets.{wildcards.ds}.grid.axes"
        )
    return points[wildcards.point]


def point_key(point):
    """A point as lineage's cache takes it: its (key, value) pairs."""
    return tuple(point.items()) if point else None


def grid_flags(wildcards):
    return run_flags(wildcards.ds, wildcards.variant, grid_point(wildcards))


def grid_lineage(wildcards):
    return lineage(
        wildcards.ds, "run", wildcards.variant, point_key(grid_point(wildcards))
    )


def grid_runs(wildcards, filename):
    """``filename`` of every point and search seed of the job's variant, in the grid's order."""
    return expand(
        "results/{ds}/grid/{variant}/{point}/seed{seed}/{filename}",
        ds=wildcards.ds,
        variant=wildcards.variant,
        point=list(GRIDS[wildcards.ds]),
        seed=grid_section(wildcards)["seeds"],
        filename=filename,
    )


def grid_variants(wildcards):
    return grid_section(wildcards)["variants"]


def chosen_point(ds, variant):
    """The point grid-select chose for ``variant``, from its best.json. The tuned runs take it
    as a param, not best.json as an input: they rerun when the choice changes, not each time
    the selection is redone (grid_select is a checkpoint, so they are planned after it).
    """
    best = checkpoints.grid_select.get(ds=ds, variant=variant).output[0]
    with open(best) as handle:
        return json.load(handle)["point"]


def tuned_inputs(wildcards):
    chosen_point(wildcards.ds, wildcards.variant)  # after the selection
    return train_inputs(wildcards)


def tuned_flags(wildcards):
    point = chosen_point(wildcards.ds, wildcards.variant)
    return run_flags(wildcards.ds, wildcards.variant, point)


def tuned_lineage(step):
    """A params function: the lineage of a tuned run's ``step`` (run, metrics)."""

    def of_job(wildcards):
        point = chosen_point(wildcards.ds, wildcards.variant)
        return lineage(wildcards.ds, step, wildcards.variant, point_key(point))

    return of_job


def tuned_runs(wildcards, filename):
    """``filename`` of every seed of every tuned variant, variant by variant (planned after
    the selections, which a rule whose params read a chosen point must wait for)."""
    for variant in grid_variants(wildcards):
        checkpoints.grid_select.get(ds=wildcards.ds, variant=variant)
    return [
        path
        for variant in grid_variants(wildcards)
        for path in expand(
            "results/{ds}/tuned/{variant}/seed{seed}/{filename}",
            ds=wildcards.ds,
            variant=variant,
            seed=ds_config(wildcards, "train")["seeds"],
            filename=filename,
        )
    ]


def tuned_variants_lineage(wildcards):
    ds = wildcards.ds
    runs = [
        lineage(ds, "metrics", v, point_key(chosen_point(ds, v)))
        for v in grid_variants(wildcards)
    ]
    seeds = ds_config(wildcards, "train")["seeds"]
    return _digest(stage_code("variants"), seeds, runs)


def grid_report_lineage(wildcards):
    ds, variants = wildcards.ds, grid_variants(wildcards)
    return _digest(
        stage_code("grid_report"),
        paper_dataset(wildcards),
        ds_config(wildcards, "train")["seeds"],
        tuned_variants_lineage(wildcards),
        [lineage(ds, "grid_select", v) for v in variants],
        [lineage(ds, "metrics", v) for v in variants],
    )


def untuned_values(wildcards):
    """Per tuned variant, the values of the grid's axes its untuned runs train with."""
    axes = grid_section(wildcards)["axes"]
    values = {}
    for variant in grid_variants(wildcards):
        train = run_values(wildcards.ds, variant)[0]
        values[variant] = {key: train[key] for key in axes}
    return json.dumps(values)


# Published feature sets (import.smk).
SDK_ROLES = ("labels", "words", "acoustic", "visual")


def fill_sdk_sources():
    """Each sdk section's sequences as configured (a URL or a local .csd), else the SDK's
    default for its dataset; in place, so every rule (downloads too) sees the same."""
    for ds in IMPORTED:
        source = config["datasets"][ds]["source"]
        if source["layout"] != "sdk":
            continue
        from thne.data.sdk import DEFAULT_SEQUENCES

        defaults = DEFAULT_SEQUENCES.get(
            source.get("dataset") or config["datasets"][ds].get("base") or ds, {}
        )
        for role in SDK_ROLES:
            if not source.get(role):
                if role not in defaults:
                    raise ValueError(
                        f"datasets.{ds}.source.{role}: give the {role} sequence (.csd), "
                        "a URL or a local path"
                    )
                source[role] = defaults[role]


def import_inputs(wildcards):
    source = source_of(wildcards)
    if source["layout"] != "sdk":
        if not source.get("pickles"):
            raise ValueError(
                f"datasets.{wildcards.ds}.source.pickles: the {source['layout']} layout "
                "needs its pickles (a folder for mmim, a .pkl file for mmsa_pkl)"
            )
        return {"pickles": source["pickles"]}
    inputs = {}
    for role in SDK_ROLES:
        where = source[role]
        inputs[role] = (
            f"data/{wildcards.ds}/download/{role}.csd" if is_url(where) else where
        )
    return inputs


def import_flags(wildcards, input):
    if "pickles" in input.keys():
        return f"--pickles {shlex.quote(str(input.pickles))}"
    return " ".join(f"--{r}-csd {shlex.quote(str(input[r]))}" for r in SDK_ROLES)


fill_sdk_sources()


# New media to score (predict.smk).
def predict_entry(wildcards):
    entry = config.get("predict", {}).get(wildcards.name)
    if entry is None:
        raise ValueError(
            f"predict.{wildcards.name}: no such entry in the config's predict:"
        )
    if entry["dataset"] != wildcards.ds:
        raise ValueError(
            f"predict.{wildcards.name} is scored by dataset {entry['dataset']!r}: ask for "
            f"results/{entry['dataset']}/predict/{wildcards.name}/predictions.tsv"
        )
    return entry


def predict_inputs(wildcards):
    entry = predict_entry(wildcards)
    return [entry["input"]] if isinstance(entry["input"], str) else entry["input"]


def predict_sources(wildcards):
    """The files that say what to score: a folder's media and transcripts, or the TSV."""
    files = []
    for item in predict_inputs(wildcards):
        if os.path.isdir(item):
            for folder, dirs, names in sorted(os.walk(item)):
                dirs.sort()
                files += [
                    os.path.join(folder, n)
                    for n in sorted(names)
                    if n.lower().endswith((*MEDIA_SUFFIXES, ".txt"))
                ]
        else:
            files.append(item)
    return files


def predict_manifest(wildcards):
    return checkpoints.predict_clips.get(
        ds=wildcards.ds, name=wildcards.name
    ).output.manifest


def predict_shard_media(wildcards):
    """As shard_media, for a shard of the clips to score."""
    return clips_fingerprint(clips_of_shard(predict_manifest(wildcards), wildcards))


def predict_shard_files(wildcards):
    from thne.data.manifest import read_manifest
    from thne.data.shards import n_shards

    size = config["datasets"][wildcards.ds]["shard_size"]
    n = n_shards(read_manifest(predict_manifest(wildcards)), size)
    return expand(
        "features/{ds}/predict/{name}/shards/{modality}/{shard}.h5",
        ds=wildcards.ds,
        name=wildcards.name,
        modality=wildcards.modality,
        shard=range(n),
    )


def predict_models(wildcards):
    entry = predict_entry(wildcards)
    seeds = entry.get("seeds") or ds_config(wildcards, "train")["seeds"]
    return expand(
        "results/{ds}/runs/{variant}/seed{seed}/model.safetensors",
        ds=wildcards.ds,
        variant=entry.get("variant", "thne"),
        seed=seeds,
    )


def predict_lineage(wildcards):
    """The lineage of the runs that score, and of the features they score."""
    entry = predict_entry(wildcards)
    return _digest(
        lineage(wildcards.ds, "run", entry.get("variant", "thne")),
        entry.get("seeds") or ds_config(wildcards, "train")["seeds"],
        [lineage(wildcards.ds, f"features/{m}") for m in ("audio", "visual")],
    )


def predict_flags(wildcards, input):
    runs = " ".join(f"--run {shlex.quote(os.path.dirname(m))}" for m in input.models)
    return (
        f"{runs} --manifest {input.manifest} --audio {input.audio}"
        f" --visual {input.visual}"
    )
