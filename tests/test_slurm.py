"""The workflow through profiles/slurm, for real, on a one-node SLURM cluster on this machine.

`.ci/slurm-up` starts the cluster (munge, slurmctld, slurmd; no accounting database, so the
executor polls squeue) and `.ci/run` sets THNE_REQUIRE_SLURM=1, which turns a missing cluster
into a failure. Elsewhere the test is skipped when no cluster answers.
"""

import json
import os
import shutil
import subprocess

import pytest
from test_workflow import demo_subset, write_config

from conftest import REPO, run_snakemake

# One worker under pytest-xdist runs this file's tests, one after another: the cluster's job
# list (sacct) must hold only the jobs of the test that reads it.
pytestmark = pytest.mark.xdist_group("slurm")


def cluster_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(
        state.strip() in ("idle", "mixed", "allocated") for state in proc.stdout.splitlines()
    )


@pytest.fixture(scope="module")
def slurm():
    if not cluster_up():
        if os.environ.get("THNE_REQUIRE_SLURM") == "1":
            pytest.fail("THNE_REQUIRE_SLURM=1 but no SLURM cluster answers sinfo (.ci/slurm-up)")
        pytest.skip("no SLURM cluster here; .ci/slurm-up starts one")


def run_on_slurm(work, cfg, target, gpus=None, check=True, verbose=False, per_gpu=1):
    # Set either way, so a value in the caller's environment cannot change the test.
    # Submitted from a host without GPUs, as a cluster's login node usually is.
    env_gpus = {
        "THNE_SLURM_GPUS": "1" if gpus is None else str(gpus),
        "THNE_SLURM_JOBS_PER_GPU": str(per_gpu),
        "CUDA_VISIBLE_DEVICES": "",
    }
    old = {k: os.environ.get(k) for k in env_gpus}
    os.environ.update(env_gpus)
    try:
        return run_snakemake(
            work,
            target,
            "--profile",
            str(REPO / "profiles" / "slurm"),
            "--configfile",
            str(cfg),
            # The test cluster has no accounting database, and a 2-CPU node.
            "--slurm-status-command",
            "squeue",
            "--slurm-no-account",
            "--cores",
            "2",
            "--latency-wait",
            "5",
            # Poll often: the jobs here take seconds, not hours.
            "--slurm-init-seconds-before-status-checks",
            "1",
            "--seconds-between-status-checks",
            "2",
            # --verbose: the executor logs each sbatch call it makes.
            *(["--verbose"] if verbose else []),
            check=check,
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def job_resources(out: str, rule: str) -> dict[str, str]:
    """The resources a dry run lists for the first job of ``rule``."""
    block = out.split(f"rule {rule}:", 1)[1]
    line = next(x for x in block.splitlines() if x.strip().startswith("resources:"))
    return dict(kv.split("=", 1) for kv in line.split(":", 1)[1].strip().split(", "))


@pytest.mark.slow
def test_gpu_requests_come_from_the_profile_not_the_submitting_host(tmp_path, monkeypatch):
    """Planned on a host without GPUs, a training job under profiles/slurm still asks for
    one; the workflow profile's cap at this host's GPUs applies to local runs only. Checked
    against the profiles as they were (profiles/default capping `gpu` at visible_gpus()):
    the dry run showed gpu=0. Needs no cluster: a dry run submits nothing."""
    cfg = write_config(tmp_path / "cfg.yaml", REPO / "resources" / "demo")
    plan = ("--configfile", str(cfg), "-n")
    plan += ("results/demo/runs/thne/seed1/model.safetensors",)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("THNE_SLURM_GPUS", raising=False)
    slurm = run_snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *plan)
    train = job_resources(slurm.stdout, "train")
    assert train["gpu"] == "1" and train["cpus_per_gpu"] == "8", train
    monkeypatch.setenv("THNE_SLURM_GPUS", "0")
    slurm = run_snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"), *plan)
    assert job_resources(slurm.stdout, "train")["gpu"] == "0"
    # A local run on a machine with two GPUs: each training job holds one of them, 8 of the
    # 16 slots the workflow profile counts there.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    local = run_snakemake(tmp_path, *plan)
    train = job_resources(local.stdout, "train")
    assert train["gpu_slots"] == "8" and train["jobs_per_gpu"] == "1", train
    assert profile_resources()["gpu_slots"] == 16
    # train.jobs_per_gpu: 4: a job holds 2 slots, so four share each GPU, and the job claims
    # a slot of a GPU (thne train --jobs-per-gpu 4, tests/test_devices.py).
    shared = write_config(tmp_path / "shared.yaml", REPO / "resources" / "demo", jobs_per_gpu=4)
    local = run_snakemake(tmp_path, *plan[2:], "--configfile", str(shared), "-p")
    train = job_resources(local.stdout, "train")
    assert train["gpu_slots"] == "2" and "--jobs-per-gpu 4 " in local.stdout, train


def profile_resources() -> dict:
    """The global resources profiles/default gives Snakemake on this host."""
    from yte import process_yaml

    text = (REPO / "profiles" / "default" / "config.yaml").read_text()
    return process_yaml(text)["resources"]


@pytest.mark.slow
def test_demo_subset_through_slurm(slurm, tmp_path):
    """The demo through profiles/slurm: the train job's own sbatch call asks for a GPU and
    SLURM rejects it (this node has none); THNE_SLURM_GPUS=0 then trains on the CPU node.
    Checked against the profiles as they were (profiles/default capping `gpu` at the
    submitting host's GPUs): the train job's sbatch call had no --gpus. Then the demo grid's
    four points go to SLURM as one grouped job (THNE_SLURM_JOBS_PER_GPU=4) that asks for one
    GPU, and run as one job on the CPU node; checked against the profile without the
    grid_train group: four sbatch calls, each one grid point."""
    raw = demo_subset(tmp_path / "raw", {"train": 4, "valid": 2, "test": 2})
    cfg = write_config(tmp_path / "cfg.yaml", raw, variants=["thne"], device="auto")
    work = tmp_path / "work"
    work.mkdir()
    target = "results/demo/metrics.json"

    # The train job's sbatch call asks for a GPU (the host that submits it has none), and
    # SLURM rejects that call: this cluster's node has no GPUs.
    proc = run_on_slurm(work, cfg, target, check=False, verbose=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    calls = [line for line in out.splitlines() if "sbatch call: sbatch" in line]
    [train_call] = [c for c in calls if "rule_train_" in c]
    assert " --gpus=1" in train_call and " --cpus-per-gpu=8" in train_call, train_call
    assert not any("--gpus" in c for c in calls if c is not train_call)
    rejection = out.split("SLURM sbatch failed.", 1)[1]
    assert "Invalid generic resource (gres) specification" in rejection.split("sbatch call:")[0]
    assert "rule_train_" in rejection.split("sbatch call:")[1].splitlines()[1]
    logs = work / ".snakemake" / "slurm_logs"
    # Rejected at submission: no train job ever ran, so none left a log.
    assert not list((logs / "rule_train").rglob("*.log"))
    # Everything before training ran as SLURM jobs, the extraction shards grouped.
    assert (work / "features/demo/audio.h5").exists() and (work / "features/demo/text.h5").exists()
    assert (logs / "group_audio_audio_shard").is_dir() and (logs / "rule_ingest").is_dir()
    assert not (work / "results/demo/runs/thne/seed1/model.safetensors").exists()

    # The documented CPU fallback: THNE_SLURM_GPUS=0 trains on the CPU nodes.
    proc = run_on_slurm(work, cfg, target, gpus=0)
    metrics = json.loads((work / target).read_text())
    assert metrics["seeds"] == [1] and 0 <= metrics["mean"]["mae"] < 10
    assert (logs / "rule_train").is_dir()
    # Evaluation and aggregation take seconds: they ran here, not as SLURM jobs.
    assert not (logs / "rule_aggregate").exists() and not (logs / "group_evaluate").exists()
    assert "rule audio_shard:" not in proc.stdout + proc.stderr  # not redone

    # The demo grid's four runs go to SLURM four to a job (THNE_SLURM_JOBS_PER_GPU=4): one
    # group, which asks for one GPU through gres, not four through --gpus. This node has no
    # GPU, so SLURM rejects that call.
    grid = "results/demo/grid/thne/best.json"
    proc = run_on_slurm(work, cfg, grid, check=False, verbose=True, per_gpu=4)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    calls = [line for line in out.splitlines() if "sbatch call: sbatch" in line]
    [grid_call] = calls
    assert "group_grid" in grid_call and " --gres=gpu:1" in grid_call, grid_call
    assert "--gpus" not in grid_call
    # On the CPU node: the four points run as one SLURM job, as sacct lists it.
    before = finished_jobs()
    run_on_slurm(work, cfg, grid, gpus=0, per_gpu=4)
    assert len(list((work / "results/demo/grid/thne").rglob("valid_metrics.json"))) == 4
    new = {job: state for job, state in finished_jobs().items() if job not in before}
    assert list(new.values()) == ["COMPLETED"], new
    assert [p.name for p in logs.iterdir() if "grid" in p.name] == ["group_grid_grid_train"]
    assert len(list((logs / "group_grid_grid_train").rglob("*.log"))) == 1


def finished_jobs() -> dict[str, str]:
    """Every job this cluster has finished, with its state, as `sacct` lists them from the
    job completion log (`.ci/slurm-up`: no accounting database)."""
    out = subprocess.run(
        ["sacct", "--completion", "-X", "-n", "-P", "-o", "JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split())
