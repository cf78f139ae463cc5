import ast
import functools
import hashlib
import shlex
from pathlib import Path

import yaml
from snakemake.utils import validate

from thne.devices import visible_gpus


def fill_defaults(user, defaults):
    """Deep-merge the shipped defaults under the user's values, in place.

    The Snakefile's configfile path is relative to the working directory, so a run elsewhere
    (--directory) would lack the defaults; merging them here keeps a user's file as short as
    the keys it changes (e.g. only datasets.mosi.source.raw_dir).
    """
    for key, value in defaults.items():
        if key not in user:
            user[key] = value
        elif isinstance(value, dict) and isinstance(user[key], dict):
            fill_defaults(user[key], value)
    return user


fill_defaults(
    config, yaml.safe_load(Path(workflow.basedir, "config/config.yaml").read_text())
)
validate(config, schema="../schemas/config.schema.yaml")


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


wildcard_constraints:
    ds="|".join(DATASETS),
    modality="audio|visual",
    shard=r"\d+",
    variant="[a-z0-9_]+",
    seed=r"\d+",


def ds_config(wildcards, section):
    return config["datasets"][wildcards.ds][section]


# Modules every stage's command runs through.
CORE_MODULES = ("cli.py", "io.py", "data/manifest.py")


def code_version(*modules):
    """Fingerprint of the thne modules a rule runs, as a rule param.

    Snakemake does not see code in a package called from shell:, so each rule carries this
    param: a change to what the code does reruns the rule. The fingerprint hashes the parsed
    syntax tree, so comment and formatting edits rerun nothing.
    """
    digest = hashlib.sha256()
    for module in CORE_MODULES + modules:
        digest.update(module.encode())
        digest.update(module_digest(module))
    return digest.hexdigest()[:16]


@functools.cache
def module_digest(module):
    # Every job re-parses the Snakefile: parse each module once, however many rules use it.
    source = Path(workflow.basedir, "thne", module).read_text()
    return hashlib.sha256(ast.dump(ast.parse(source)).encode()).digest()


def is_url(value):
    return str(value).startswith(("http://", "https://"))


def source_of(wildcards):
    return ds_config(wildcards, "source")


def cmu_dataset(wildcards):
    return source_of(wildcards).get("dataset", wildcards.ds)


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


def download_flags(url, mirrors, sha256):
    flags = [f"--url {shlex.quote(url)}"] + [
        f"--mirror {shlex.quote(m)}" for m in mirrors
    ]
    return " ".join(flags + ([f"--sha256 {sha256}"] if sha256 else []))


def shard_threads(wildcards):
    return config["datasets"][wildcards.ds].get("shard_threads", 2)


def visual_inputs(wildcards):
    """The manifest, and for OpenFace the shard's plan and finished run."""
    inputs = {"manifest": f"data/{wildcards.ds}/manifest.tsv"}
    if ds_config(wildcards, "visual")["extractor"] == "openface":
        inputs["plan"] = f"features/{wildcards.ds}/openface/plan"
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
    """1 for a job that trains on a GPU. device auto asks for one where this machine has one;
    the SLURM profile asks for one on the cluster's nodes whatever the submit host has.
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
    " grad_clip weight_decay max_epochs patience max_frames device checkpoint_every_s"
).split()


def train_flags(wildcards):
    train = ds_config(wildcards, "train")
    flags = [
        f"--{key.replace('_', '-')} {train[key]}" for key in TRAIN_FLAGS if key in train
    ]
    flags.append("--bf16" if train.get("bf16", True) else "--no-bf16")
    if wildcards.variant not in config["variants"]:
        raise ValueError(
            f"variant {wildcards.variant!r} is not defined under variants: in the config"
        )
    # t-HNE's own switches, overridden by the variant's entry.
    switches = {**dict.fromkeys(SWITCHES, True), "residual": False}
    switches.update(config["variants"][wildcards.variant] or {})
    flags += [f"--{name}" if on else f"--no-{name}" for name, on in switches.items()]
    return " ".join(flags)
