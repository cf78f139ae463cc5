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


def run_on_slurm(work, cfg, target, gpus=None, check=True):
    # Set either way, so a value in the caller's environment cannot change the test.
    env_gpus = {"THNE_SLURM_GPUS": "1" if gpus is None else str(gpus)}
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
            check=check,
        )
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_demo_subset_through_slurm(slurm, tmp_path):
    raw = demo_subset(tmp_path / "raw", {"train": 4, "valid": 2, "test": 2})
    cfg = write_config(tmp_path / "cfg.yaml", raw, variants=["thne"], device="auto")
    work = tmp_path / "work"
    work.mkdir()
    target = "results/demo/metrics.json"

    # Training asks SLURM for a GPU; this node has none, and SLURM says so in the job's log,
    # which Snakemake's error names.
    proc = run_on_slurm(work, cfg, target, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Error in rule train" in out
    logs = work / ".snakemake" / "slurm_logs"
    [train_log] = (logs / "rule_train").rglob("*.log")
    assert str(train_log) in out
    assert "Invalid generic resource (gres) specification" in train_log.read_text()
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
