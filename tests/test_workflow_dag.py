"""The lineage's graph is the rules' graph: every job of the headline targets' real DAG reads
the results of exactly the jobs its lineage follows (thne/workflow/lineage.py)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import BIN, REPO, run_snakemake
from thne.workflow.config import grids, resolve_config
from thne.workflow.lineage import STEPS, Job, Lineage, point_key, step_of

# Snakemake's own DAG of the targets, built by its API from the repository root with the
# user's --configfile: each job's rule and wildcards, and the jobs whose outputs it reads.
DAG = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import (
    ConfigSettings, DAGSettings, OutputSettings, ResourceSettings, StorageSettings)

configfile, *targets = sys.argv[1:]
with SnakemakeApi(OutputSettings()) as api:
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[Path(configfile)]),
        storage_settings=StorageSettings(),
        snakefile=Path("Snakefile"),
        workdir=Path("."),
    )
    workflow_api.dag(DAGSettings(targets=set(targets)))
    workflow = workflow_api._workflow
    workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True)
    workflow._build_dag()
    name = lambda job: {"rule": job.rule.name, "wildcards": dict(job.wildcards_dict)}
    jobs = [
        {**name(job), "reads": [name(dep) for dep in deps]}
        for job, deps in workflow.dag.dependencies.items()
    ]
print("DAG " + json.dumps(jobs))
"""
TARGETS = (
    "results/demo/metrics.json",
    "results/demo/report/index.html",
    "results/demo/grid.md",
    "results/demo/predict/mine/predictions.tsv",
    "results/demo/predict/mine/explain",
)


def dag_jobs(root, config) -> list[dict]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-c", DAG, str(config), *TARGETS],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("DAG ")]
    return json.loads(line[4:])


@pytest.mark.slow
def test_every_jobs_inputs_come_from_its_lineages_upstream(demo_build, tmp_path):
    root = demo_build.copy_to(tmp_path / "root")
    cfg = yaml.safe_load(demo_build.config.read_text())
    folder = tmp_path / "videos"
    folder.mkdir()
    for media in sorted(demo_build.raw.rglob("*.mp4"))[:2]:
        (folder / media.name).write_bytes(media.read_bytes())
        (folder / f"{media.stem}.txt").write_text("a clip to score\n")
    cfg["predict"] = {"mine": {"dataset": "demo", "input": str(folder), "seeds": [1]}}
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    # The checkpoints the plan reads, made for real: the clips to score, and each tuned
    # variant's selection (the demo grid's four points, trained).
    selections = [
        f"results/demo/grid/{v}/best.json" for v in cfg["datasets"]["demo"]["grid"]["variants"]
    ]
    targets = ("data/demo/predict/mine/manifest.tsv", *selections)
    run_snakemake(root, *targets, "--configfile", str(config), "--cores", "2")
    resolved = resolve_config(yaml.safe_load(config.read_text()), REPO)
    points = grids(resolved)["demo"]
    chosen = {
        v: json.loads((root / best).read_text())["point"]
        for v, best in zip(
            resolved["datasets"]["demo"]["grid"]["variants"], selections, strict=True
        )
    }

    lineage = Lineage(resolved, lambda *a: "code", lambda ds, v: chosen[v])

    def job_of(rule: str, wildcards: dict) -> Job | None:
        step = step_of(rule)
        if step is None:
            return None
        point = None
        if "point" in wildcards:
            point = point_key(points[wildcards["point"]])
        elif rule.startswith("tuned_") and "variant" in wildcards:
            point = point_key(chosen[wildcards["variant"]])
        return Job.of(step, wildcards, point)

    def closure(jobs: set[Job]) -> set[Job]:
        seen, todo = set(), list(jobs)
        while todo:
            job = todo.pop()
            if job not in seen:
                seen.add(job)
                todo.extend(lineage.upstream(job))
        return seen

    checked, problems = set(), []
    jobs = dag_jobs(root, config)
    for entry in jobs:
        job = job_of(entry["rule"], entry["wildcards"])
        if job is None:
            continue
        by_date = STEPS[job.step].by_date
        reads = {job_of(r["rule"], r["wildcards"]) for r in entry["reads"]} - {None}
        reads = {r for r in reads if r.step not in by_date}
        declared = lineage.upstream(job)
        if not declared <= reads:
            problems.append(f"{entry['rule']} {job}: lineage follows unread {declared - reads}")
        if not reads <= closure(declared):
            problems.append(f"{entry['rule']} {job}: reads {reads - closure(declared)} unfollowed")
        checked.add(entry["rule"])
    assert problems == [], "\n".join(problems)
    # Every rule with a lineage was planned, so every step's declaration was checked.
    every = {"grid_train", "tuned_train", "tuned_evaluate", "predict_explain", *STEPS}
    assert every - {"import_features"} <= checked, every - checked


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["runs/thne/seed1", "grid/thne/alpha~0.1/lr~0.001/seed1"])
def test_the_retrain_command_retrains_that_run_alone(demo_build, tmp_path, folder):
    """thne's message for an older run (a model.pt only) names a command that plans that one
    training job. Before: `snakemake --forcerun train <run>/model.safetensors` took the path
    as a rule to force, planned the default target and forced every train job."""
    import re

    from thne.runs import RunError, read_run

    root = demo_build.copy_to(tmp_path / "root")
    run = root / "results/demo" / folder
    run.mkdir(parents=True, exist_ok=True)
    (run / "model.safetensors").unlink(missing_ok=True)
    (run / "model.pt").write_bytes(b"old")
    with pytest.raises(RunError) as error:
        read_run(run)
    [command] = re.findall(r"snakemake [^()]*model\.safetensors", str(error.value))
    assert f"results/demo/{folder}/model.safetensors" in command
    args = command.split()[1:]
    plan = run_snakemake(root, *args, "--configfile", str(demo_build.config), "-n")
    text = plan.stdout + plan.stderr
    rule = "grid_train" if folder.startswith("grid") else "train"
    assert re.search(rf"^{rule}\s+1$", text, re.M), text[-2000:]
    assert re.search(r"^total\s+1$", text, re.M), text[-2000:]
