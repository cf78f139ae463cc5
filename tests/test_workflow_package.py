"""thne.workflow without Snakemake: config resolution, a run's settings, lineage."""

import argparse
import copy
import dataclasses
import shlex

import pytest

from conftest import REPO
from thne.train.config import TrainConfig
from thne.workflow.config import ConfigError, load_schema, resolve_config
from thne.workflow.lineage import STEPS, Job, Lineage, figure_variants, point_key, step_of
from thne.workflow.runs import PER_JOB, resolve_run, train_flags


def resolved(user: dict | None = None) -> dict:
    return resolve_config(copy.deepcopy(user or {}), REPO)


def lineage_of(config: dict, job: Job, chosen=None) -> str:
    return Lineage(config, lambda stage, *files: f"{stage}{files}", chosen)(job)


# Config resolution


def test_a_short_user_file_gets_the_shipped_values_and_the_schema_defaults():
    cfg = resolved({"datasets": {"demo": {"train": {"seeds": [7]}}}})
    demo = cfg["datasets"]["demo"]
    assert demo["train"]["seeds"] == [7]
    assert demo["train"]["batch_size"] == 16  # shipped
    assert cfg["datasets"]["mosi"]["visual"]["extractor"] == "openface"
    assert set(cfg["variants"]) >= {"thne", "residual", "mmim"}
    # A key neither file gives takes the schema's default.
    own = copy.deepcopy(demo)
    del own["shard_threads"], own["train"]["dropout"]
    section = resolved({"datasets": {"mine": own}})["datasets"]["mine"]
    assert (section["shard_threads"], section["train"]["dropout"]) == (2, 0.1)


def test_a_users_source_replaces_the_shipped_one_whole():
    cfg = resolved({"datasets": {"demo": {"source": {"layout": "mmsa", "url": "http://h/x.zip"}}}})
    assert cfg["datasets"]["demo"]["source"] == {"layout": "mmsa", "url": "http://h/x.zip"}


def test_a_base_section_takes_its_bases_values():
    cfg = resolved(
        {"datasets": {"mosi_sdk": {"base": "mosi", "source": {"layout": "sdk", "dataset": "mosi"}}}}
    )
    section = cfg["datasets"]["mosi_sdk"]
    assert section["train"] == cfg["datasets"]["mosi"]["train"]
    # The sdk layout's sequences are filled from the SDK's defaults for its dataset.
    assert section["source"]["words"].endswith(".csd")


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (
            {"datasets": {"demo": {"train": {"batch_size": "large"}}}},
            "config.datasets.demo.train.batch_size: 'large' is not of type 'integer'",
        ),
        (
            {"datasets": {"demo": {"grid": {"axes": {"batch_size": [16, 0]}}}}},
            "datasets.demo.grid.axes.batch_size: 0 is less than the minimum of 2",
        ),
        (
            {"datasets": {"demo": {"grid": {"axes": {"dropout": [0.1, 1.5]}}}}},
            "datasets.demo.grid.axes.dropout: 1.5 is greater than the maximum of 1",
        ),
        (
            {"datasets": {"demo": {"train": {"variants": ["thne", "nope"]}}}},
            "datasets.demo.train.variants names nope",
        ),
        ({"variants": {"residual": {"deno1": False}}}, "variants.residual: a shipped variant"),
    ],
)
def test_a_bad_config_names_its_key(user, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        resolved(user)


def test_every_train_key_of_the_schema_is_a_run_setting_or_a_job_setting():
    """One home for a default: a train key's schema default is TrainConfig's, and a key
    TrainConfig lacks is one the workflow uses itself (seeds, variants, how a job runs)."""
    schema = load_schema(REPO)["$defs"]["dataset"]["properties"]["train"]["properties"]
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    workflow_keys = {"seeds", "variants", "device", "threads", "jobs_per_gpu"}
    assert set(schema) - set(fields) == workflow_keys
    for key, entry in schema.items():
        if key in fields and "default" in entry:
            assert entry["default"] == fields[key].default, key


# A run's settings


def test_resolve_run_takes_the_variants_weights_and_a_points_values_over_the_datasets():
    cfg = resolved()
    demo = cfg["datasets"]["demo"]["train"]
    plain = resolve_run(cfg, "demo", "thne")
    assert (plain.alpha, plain.lr, plain.batch_size) == (demo["alpha"], demo["lr"], 16)
    assert plain.encoder == cfg["datasets"]["demo"]["text"]["encoder"]
    residual = resolve_run(cfg, "demo", "residual")
    assert residual.alpha == 0.05 and residual.residual
    searched = resolve_run(cfg, "demo", "residual", {"alpha": 0.3, "lr": 5e-3})
    assert (searched.alpha, searched.lr) == (0.3, 5e-3)
    mmim = resolve_run(cfg, "demo", "mmim")
    assert mmim.model == "mmim" and not mmim.deno1 and not mmim.deno2
    with pytest.raises(ValueError, match="'nope' is not defined"):
        resolve_run(cfg, "demo", "nope")


@pytest.mark.parametrize("variant", ["thne", "residual", "text_only", "mmim", "mine"])
def test_the_flags_give_thne_train_the_same_settings(variant):
    """train_flags, parsed by thne train's own parser, rebuild the resolved TrainConfig."""
    from thne.stages import train as stage

    user = {"variants": {"mine": {"deno2": False, "alpha": 0.2}}}
    cfg = resolve_run(resolved(user), "demo", variant, {"lr": 5e-3})
    parser = argparse.ArgumentParser()
    stage.add_arguments(parser)
    paths = "--manifest m --text t --audio a --visual v --out-dir o"
    args = parser.parse_args(shlex.split(f"{paths} {train_flags(cfg)} --seed 3"))
    assert stage.train_config(args) == dataclasses.replace(cfg, seed=3)


def test_a_new_train_key_reaches_the_run_through_the_schema_and_trainconfig_alone():
    """What resolve_run reads of the train section: every TrainConfig field but the per-job
    ones, found by name."""
    cfg = resolved({"datasets": {"demo": {"train": {"max_frames": 123, "mi_memory": 3}}}})
    run = resolve_run(cfg, "demo", "thne")
    assert (run.max_frames, run.mi_memory) == (123, 3)
    assert "--max-frames 123" in train_flags(run) and "--mi-memory 3" in train_flags(run)
    assert not any(f"--{k.replace('_', '-')} " in train_flags(run) for k in PER_JOB)


# Lineage


def test_lineage_follows_its_steps_own_values_and_nothing_else():
    base = resolved()
    before = {
        step: lineage_of(base, job)
        for step, job in {
            "audio": Job("audio_shard", "demo"),
            "visual": Job("visual_shard", "demo"),
            "text": Job("tokenize", "demo"),
            "run": Job("train", "demo", variant="thne"),
            "metrics": Job("evaluate", "demo", variant="thne"),
        }.items()
    }

    def changed(edit) -> set[str]:
        cfg = resolved(edit)
        jobs = {
            "audio": Job("audio_shard", "demo"),
            "visual": Job("visual_shard", "demo"),
            "text": Job("tokenize", "demo"),
            "run": Job("train", "demo", variant="thne"),
            "metrics": Job("evaluate", "demo", variant="thne"),
        }
        return {k for k, job in jobs.items() if lineage_of(cfg, job) != before[k]}

    demo = lambda section: {"datasets": {"demo": section}}  # noqa: E731
    assert changed(demo({"audio": {"n_mfcc": 13}})) == {"audio", "run", "metrics"}
    assert changed(demo({"text": {"max_length": 40}})) == {"text", "run", "metrics"}
    assert changed(demo({"train": {"lr": 5.0e-3}})) == {"run", "metrics"}
    # Which runs exist and how a job runs are no part of what a run computes.
    assert changed(demo({"train": {"seeds": [9], "threads": 3, "jobs_per_gpu": 2}})) == set()
    assert changed(demo({"train": {"checkpoint_every_s": 5}})) == set()
    assert changed(demo({"train": {"device": "cpu"}})) == {"run", "metrics"}


def test_a_predict_shard_follows_its_entrys_policy_not_the_datasets():
    user = {"predict": {"mine": {"dataset": "demo", "input": "x"}}}
    job = Job("predict_visual_shard", "demo", entry="mine")
    base = lineage_of(resolved(user), job)
    dataset_policy = {**user, "datasets": {"demo": {"on_bad_clip": "exclude"}}}
    assert lineage_of(resolved(dataset_policy), job) == base
    entry_policy = {"predict": {"mine": {**user["predict"]["mine"], "on_bad_clip": "fail"}}}
    assert lineage_of(resolved(entry_policy), job) != base


def test_the_figure_follows_the_runs_it_draws():
    cfg = resolved()
    lin = Lineage(cfg, lambda *a: "code")
    drawn = {j.variant for j in lin.upstream(Job("loss_curves", "demo"))}
    assert drawn == set(figure_variants(cfg, "demo")) == {"thne", "residual"}
    only = resolved({"datasets": {"demo": {"train": {"variants": ["thne", "mmim"]}}}})
    assert figure_variants(only, "demo") == ["thne"]


def test_a_tuned_result_follows_the_chosen_point():
    cfg = resolved()
    choice = {"lr": 0.005, "alpha": 0.1}
    job = Job("tuned_variants", "demo")
    # One Lineage, as in one Snakemake process, where a selection made again chooses anew.
    lin = Lineage(cfg, lambda *a: "code", lambda ds, v: dict(choice))
    first = lin(job)
    choice["alpha"] = 0.3
    assert lin(job) != first
    point = {"lr": 0.005, "alpha": 0.1}
    run = Job("train", "demo", variant="thne", point=point_key(point))
    assert lineage_of(cfg, run) != lineage_of(cfg, Job("train", "demo", variant="thne"))


def test_every_rule_maps_to_a_step_with_a_stage_module():
    for step in STEPS.values():
        assert (REPO / "thne" / "stages" / f"{step.stage}.py").is_file(), step
    assert step_of("grid_train") == "train" and step_of("download_archive") is None


def test_config_readme_is_written_from_the_schema():
    """config/README.md lists every key the schema has, as the schema says it."""
    from thne.workflow.docs import render

    page = (REPO / "config" / "README.md").read_text()
    assert page == render(load_schema(REPO)), (
        "config/README.md is out of date: python -m thne.workflow.docs config > config/README.md"
    )
    assert "| `datasets.<name>.train.batch_size` | integer, ≥ 2 | required |" in page
    assert "| `datasets.<name>.shard_threads` | integer, ≥ 1 | `2` |" in page


def test_the_stages_page_names_each_rules_command_step_and_log():
    from thne.workflow.docs import stages_page

    page = (REPO / "docs" / "stages.md").read_text()
    assert page == stages_page(REPO), (
        "docs/stages.md is out of date: python -m thne.workflow.docs stages > docs/stages.md"
    )
    row = "| `tokenize` | text.smk | `thne text` | `tokenize` | `logs/{ds}/text.log` |"
    assert row in page
    assert "| `tuned_train` | grid.smk | `thne train` | `train` |" in page


def test_the_cli_reference_is_written_from_the_parsers():
    from thne.workflow.docs import cli_page

    page = (REPO / "docs/reference/cli.md").read_text()
    assert page == cli_page(), (
        "docs/reference/cli.md is out of date: "
        "python -m thne.workflow.docs cli > docs/reference/cli.md"
    )
    assert "| `--on-bad-clip` | `fail` \\| `exclude` | `fail` |" in page
    assert "Of `--run`, `--ensemble`: exactly one." in page
    assert "| `--threads` | `THREADS` | `0` |" in page  # a default of 0 is not blank


def test_the_bootstrap_unit_reruns_the_comparisons_only():
    """evaluate.bootstrap_unit defaults to video and is in the lineage of the comparisons
    (variants, tuned variants, grid report), not of a run.

    Break caught: the unit left out of a step's own values (a switch to clip then left
    variants.json drawn by video looking current)."""
    assert resolved()["datasets"]["demo"]["evaluate"] == {"bootstrap_unit": "video"}
    by_clip = resolved({"datasets": {"demo": {"evaluate": {"bootstrap_unit": "clip"}}}})
    chosen = lambda ds, v: {"lr": 0.005, "alpha": 0.1}  # noqa: E731
    for step, moves in (("variants", True), ("tuned_variants", True), ("grid_report", True),
                        ("aggregate", False)):  # fmt: skip
        job = Job(step, "demo")
        before = lineage_of(resolved(), job, chosen)
        assert (lineage_of(by_clip, job, chosen) != before) is moves, step
    with pytest.raises(ConfigError, match="bootstrap_unit"):
        resolved({"datasets": {"demo": {"evaluate": {"bootstrap_unit": "speaker"}}}})
