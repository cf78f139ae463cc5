import ast
import hashlib
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")


DATASETS = sorted(config["datasets"])


wildcard_constraints:
    ds="|".join(DATASETS),
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
        source = Path(workflow.basedir, "thne", module).read_text()
        digest.update(module.encode())
        digest.update(ast.dump(ast.parse(source)).encode())
    return digest.hexdigest()[:16]


def ingest_input(wildcards):
    source = ds_config(wildcards, "source")
    where = f"datasets.{wildcards.ds}.source"
    if source["layout"] != "mmsa":
        raise ValueError(
            f"{where}.layout: {source['layout']!r} cannot be ingested by this release; "
            "point the dataset at an MMSA copy (layout: mmsa, raw_dir: <folder of label.csv>)"
        )
    if not source.get("raw_dir"):
        raise ValueError(
            f"{where}.raw_dir is not set: give the folder holding label.csv and Raw/"
        )
    raw = Path(source["raw_dir"])
    return str(raw.parent / "label.csv" if raw.name == "Raw" else raw / "label.csv")


def seed_runs(wildcards, filename, variant=None):
    seeds = ds_config(wildcards, "train")["seeds"]
    return expand(
        "results/{ds}/runs/{variant}/seed{seed}/{filename}",
        ds=wildcards.ds,
        variant=variant or wildcards.variant,
        seed=seeds,
        filename=filename,
    )


TRAIN_FLAGS = (
    "batch_size lr bert_lr alpha beta visual_hidden acoustic_hidden fusion_dim dropout"
    " grad_clip weight_decay max_epochs patience max_frames device"
).split()


def train_flags(wildcards):
    train = ds_config(wildcards, "train")
    return " ".join(
        f"--{key.replace('_', '-')} {train[key]}" for key in TRAIN_FLAGS if key in train
    )
