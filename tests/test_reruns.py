"""Only what a change touches runs again: `snakemake -n` after a real run of a demo subset.

The workflow runs from the root of a copy of the repository's workflow files and package
sources, as a user runs it from a clone, so the test can edit code, docs and tests in the copy;
the code fingerprints read the copy, exactly as they read the repository in normal use.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from test_workflow import write_config as workflow_config

from conftest import BIN, DEMO_TRAIN, REPO, SNAKEMAKE, jobs_planned, run_snakemake

# Every test here starts from a finished run (the session's demo build, trained again), built
# once for the file: one worker under pytest-xdist runs them all.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_reruns")]

FEATURE_RULES = {"audio_shard", "merge_features", "feature_stats"}
AFTER_FEATURES = {"train", "evaluate", "aggregate"}
TARGET = "results/demo/metrics.json"


def planned(root: Path, cfg: Path, target: str = TARGET) -> dict[str, int]:
    proc = run_snakemake(root, target, "--configfile", str(cfg), "-n", "--quiet", "rules")
    return jobs_planned(proc)


# One batch an epoch, as the subset of four training clips with batches of four that these
# tests were written on: a job cut off after its first checkpoint then resumes after an epoch,
# never inside one (the interrupted retrains below check "resuming after epoch").
ONE_BATCH = {"batch_size": 8}


def write_config(path: Path, raw_dir: Path, **train) -> Path:
    """test_workflow.write_config with the session build's training values (DEMO_TRAIN) and
    ONE_BATCH, so that a config with no change of its own plans nothing after ``finished``."""
    return workflow_config(path, raw_dir, **{**DEMO_TRAIN, **ONE_BATCH, **train})


def copy_repository(dest: Path) -> Path:
    """A copy of the repository's workflow, config, package, tests and docs at ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("workflow", "config", "profiles", "thne", "tests"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("Snakefile", "README.md", "environment.yml"):
        shutil.copy(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def finished(tmp_path_factory, demo_build):
    """A copy of the repository, and a finished demo-subset run in its root: the session's
    (conftest.demo_build), copied there with Snakemake's records, then trained again here in
    ONE_BATCH (the features, text and statistics are the build's, up to date)."""
    root = tmp_path_factory.mktemp("reruns")
    wf = copy_repository(root / "wf")
    demo_build.copy_to(wf)
    raw = demo_build.raw
    cfg = write_config(root / "cfg.yaml", raw)
    run_snakemake(wf, TARGET, "--configfile", str(cfg), "--cores", "2", source=wf)
    assert planned(wf, cfg) == {}
    return wf, raw


def test_acoustic_parameter_reruns_acoustic_features_and_what_follows(finished, tmp_path):
    wf, raw = finished
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    text = cfg.read_text().replace("n_mfcc: 20", "n_mfcc: 13")
    assert text != cfg.read_text()
    cfg.write_text(text)
    jobs = planned(wf, cfg)
    assert set(jobs) == FEATURE_RULES | AFTER_FEATURES, jobs
    # One merge and one statistics job: the acoustic ones; the visual features stay.
    assert jobs["merge_features"] == 1 and jobs["feature_stats"] == 1
    assert "visual_shard" not in jobs and "tokenize" not in jobs


def test_training_parameter_reruns_training_and_what_follows(finished, tmp_path):
    wf, raw = finished
    cfg = write_config(tmp_path / "cfg.yaml", raw, alpha=0.2)
    assert set(planned(wf, cfg)) == AFTER_FEATURES


def test_editing_the_acoustic_code_acts_like_a_parameter_change(finished, tmp_path):
    wf, raw = finished
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    module = wf / "thne" / "features" / "audio.py"
    original = module.read_text()
    try:
        module.write_text(original + "\n\nDEFAULT_HOP_SECONDS = 0.02\n")
        jobs = planned(wf, cfg)
    finally:
        module.write_text(original)
    assert set(jobs) == FEATURE_RULES | AFTER_FEATURES, jobs
    assert jobs["merge_features"] == 1 and "visual_shard" not in jobs


def _planned_after_edit(finished, cfg, module: Path, edit) -> dict[str, int]:
    wf, _ = finished
    original = module.read_text()
    try:
        module.write_text(edit(original))
        assert module.read_text() != original
        return planned(wf, cfg)
    finally:
        module.write_text(original)


def test_editing_a_stage_module_reruns_that_stage_and_what_follows(finished, tmp_path):
    wf, raw = finished
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    stage = wf / "thne" / "stages" / "stats.py"
    jobs = _planned_after_edit(finished, cfg, stage, lambda s: s + "\n\nMIN_CLIPS = 1\n")
    # Both statistics jobs, then training on their output; no extraction, merge or tokenizing.
    assert set(jobs) == {"feature_stats"} | AFTER_FEATURES, jobs
    assert jobs["feature_stats"] == 2


def test_editing_a_module_only_training_imports_reruns_training_and_what_follows(
    finished, tmp_path
):
    wf, raw = finished
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    model = wf / "thne" / "model" / "thne.py"
    jobs = _planned_after_edit(finished, cfg, model, lambda s: s + "\n\nLOG_EVERY = 10\n")
    assert set(jobs) == AFTER_FEATURES, jobs


def test_a_module_newly_imported_by_training_is_followed_without_a_rule_edit(finished, tmp_path):
    """Add a module, import it from the training loop, run, then edit only that module: the
    fingerprint follows the new import, although no rule names the module."""
    wf, raw = finished
    # The copy with its finished run, outputs and Snakemake's records, with their dates.
    wf2 = tmp_path / "wf"
    shutil.copytree(wf, wf2, symlinks=True)
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    rules = "".join(p.read_text() for p in (wf2 / "workflow" / "rules").glob("*.smk"))
    assert "schedule.py" not in rules and "train.schedule" not in rules

    new = wf2 / "thne" / "train" / "schedule.py"
    new.write_text('"""Learning-rate schedule."""\n\nWARMUP_EPOCHS = 0\n')
    loop = wf2 / "thne" / "train" / "loop.py"
    text = loop.read_text()
    anchor = "from thne.train.config import TrainConfig\n"
    assert anchor in text
    loop.write_text(
        text.replace(anchor, anchor + "from thne.train.schedule import WARMUP_EPOCHS\n")
    )
    assert set(planned(wf2, cfg)) == AFTER_FEATURES

    run_snakemake(wf2, TARGET, "--configfile", str(cfg), "--cores", "2", source=wf2)
    assert planned(wf2, cfg) == {}

    new.write_text(new.read_text().replace("WARMUP_EPOCHS = 0", "WARMUP_EPOCHS = 2"))
    assert set(planned(wf2, cfg)) == AFTER_FEATURES


def test_docs_tests_and_comments_rerun_nothing(finished, tmp_path):
    wf, raw = finished
    cfg = write_config(tmp_path / "cfg.yaml", raw)
    edits = {
        wf / "README.md": lambda s: s + "\nA line a user added.\n",
        wf / "tests" / "test_metrics.py": lambda s: s + "\n\ndef test_more():\n    assert True\n",
        # A comment in a module training depends on, and a reformatted line in audio.py.
        wf / "thne" / "train" / "loop.py": lambda s: s.replace(
            "def seed_everything", "# Seeds every generator.\ndef seed_everything", 1
        ),
        wf / "thne" / "features" / "audio.py": lambda s: s + "\n# closing remark\n",
    }
    originals = {path: path.read_text() for path in edits}
    try:
        for path, edit in edits.items():
            path.write_text(edit(originals[path]))
            assert path.read_text() != originals[path]
        assert planned(wf, cfg) == {}
    finally:
        for path, text in originals.items():
            path.write_text(text)


# Interrupted retrains. A training job cut off part-way (SLURM's time limit sends SIGTERM; a
# crash or an out-of-memory kill is SIGKILL) has had its outputs deleted by Snakemake and may
# have left checkpoint.pt; the evaluate, aggregate and later files of the previous config are
# still there.
RUN = "results/demo/runs/thne/seed1"


def _train_process(root: Path) -> int | None:
    """The pid of the ``thne train`` job writing into ``root``'s run folder."""
    out_dir = f"--out-dir {RUN}"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if " train " in cmd and out_dir in cmd and "thne" in cmd and cwd == str(root):
            if "/bin/sh" not in cmd and "bash" not in cmd:
                return int(proc.name)
    return None


def _interrupt_training(root: Path, cfg: Path, signum: int, env: dict) -> str:
    """Start the workflow, and once the training job has written its first checkpoint send
    it ``signum``; return the workflow's output."""
    checkpoint = root / RUN / "checkpoint.pt"
    assert not checkpoint.exists()
    proc = subprocess.Popen(
        [*SNAKEMAKE, TARGET, "--configfile", str(cfg), "--cores", "2"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists():
            assert proc.poll() is None, (
                f"the workflow ended before a checkpoint:\n{proc.stdout.read()}"
            )
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        pid = _train_process(root)
        assert pid is not None, "the training job's process was not found"
        os.kill(pid, signum)
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out
    return out


def _rerun_resumes(root: Path, cfg: Path, env: dict, epochs: int) -> pd.DataFrame:
    """After the interruption, the workflow plans the training again; the run resumes and its
    files (and the dataset's metrics) come from the new run."""
    started = time.time()
    assert not (root / RUN / "model.safetensors").exists()
    assert (root / RUN / "metrics.json").exists()
    assert set(planned(root, cfg)) == AFTER_FEATURES
    proc = subprocess.run(
        [*SNAKEMAKE, TARGET, "--configfile", str(cfg), "--cores", "2"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (root / "logs/demo/train/thne/seed1.log").read_text()
    assert "resuming after epoch" in log, log
    history = pd.read_csv(root / RUN / "history.tsv", sep="\t")
    assert sorted(set(history.epoch)) == list(range(1, epochs + 1))
    valid = json.loads((root / RUN / "valid_metrics.json").read_text())
    assert valid["epochs"] == epochs
    # Written again from this run (the best epoch, and so the numbers, may be the same).
    for path in (RUN + "/metrics.json", TARGET):
        assert (root / path).stat().st_mtime > started
    assert planned(root, cfg) == {}
    return history


def test_an_interrupted_retrain_resumes_and_replaces_the_old_results(finished, tmp_path):
    """Change a training value, start, cut the training job off after its first checkpoint
    (SIGTERM, then SIGKILL), and run again: training resumes, and history.tsv, metrics.json
    and the dataset's metrics come from the new config. Then the same after an edit of the
    training code. Checked by hand: without the lineage params (evaluate and aggregate
    carrying only their own code), the run after the first interruption said "Nothing to be done"
    and kept the old config's metrics."""
    wf, raw = finished
    root = tmp_path / "wf"
    shutil.copytree(wf, root, symlinks=True)
    # The copy's own code runs, so that an edit to it changes what the job does.
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(root),
    }
    train = {"checkpoint_every_s": 0, "patience": 50}

    cfg = write_config(tmp_path / "a.yaml", raw, max_epochs=5, **train)
    _interrupt_training(root, cfg, signal.SIGTERM, env)
    assert "got SIGTERM" in (root / "logs/demo/train/thne/seed1.log").read_text()
    _rerun_resumes(root, cfg, env, epochs=5)

    cfg = write_config(tmp_path / "b.yaml", raw, max_epochs=6, **train)
    _interrupt_training(root, cfg, signal.SIGKILL, env)
    _rerun_resumes(root, cfg, env, epochs=6)

    module = root / "thne" / "train" / "checkpoint.py"
    text = module.read_text()
    anchor = '{"epoch": epoch, "split": "valid", **valid'
    assert text.count(anchor) == 1
    module.write_text(
        text.replace(anchor, '{"epoch": epoch, "split": "valid", "edited": 1, **valid')
    )
    _interrupt_training(root, cfg, signal.SIGTERM, env)
    history = _rerun_resumes(root, cfg, env, epochs=6)
    # Every epoch ran with the edited code: a checkpoint of the code before is not resumed.
    assert (history.loc[history.split == "valid", "edited"] == 1).all()


def test_a_run_deleted_under_a_finished_result_is_trained_again(demo_build, tmp_path):
    """A result that gathers runs does not keep quoting a run deleted under it: the deleted
    run's outputs are inputs of a job the target needs, so Snakemake plans the run again
    and the result after it; once rebuilt, nothing is planned."""
    root = demo_build.copy_to(tmp_path / "root")
    cfg = demo_build.config
    assert planned(root, cfg) == {}
    shutil.rmtree(root / "results/demo/runs/thne/seed1")
    assert planned(root, cfg) == {"train": 1, "evaluate": 1, "aggregate": 1}
    run_snakemake(root, TARGET, "--configfile", str(cfg), "--cores", "2")
    assert planned(root, cfg) == {}
