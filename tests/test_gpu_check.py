"""benchmarks/gpu_check.sh's dry run on the CPU: the offline install of a prepared kit, then
the check's steps, shortened; benchmarks/packed_throughput.py's dry run and its rule. The GPU
run itself needs the machine (see the README)."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO


def dry_run(script: Path, *args: str) -> str:
    """``gpu_check.sh --dry-run *args`` with this Python and no package index reachable (what
    the check installs can only come from the kit); its output, once it succeeded."""
    proc = subprocess.run(
        ["bash", str(script), "--dry-run", "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_FIND_LINKS": ""},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
def test_dry_run_installs_the_kit_offline_and_runs_the_steps(tmp_path):
    """A kit holding this package as a wheel (built here without the network, as --prepare
    builds it): the dry run installs it with pip --no-index into a folder of its own and
    imports thne from there, then times one batch, counts the operations of one training step
    (with that thne) and runs one and two packed jobs. Checked against the script as it was (a
    venv and pip installs from PyPI, no --dry-run and no kit): exit 2, unknown argument; and
    against the packed step left out of the steps run by default: no "packed jobs on cpu"."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "thne", src / "thne", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "kit" / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*pip, "--no-index", "-w", str(wheels), str(src)], check=True)
    [wheel] = wheels.glob("thne-*-py3-none-any.whl")

    out = dry_run(
        REPO / "benchmarks" / "gpu_check.sh",
        *("--kit", str(tmp_path / "kit"), "--out", str(tmp_path / "out")),
    )
    site = out.split(f"installed from {wheels} into ", 1)[1].split(":", 1)[0]
    assert wheel.name in out and f"thne from {site}/thne/__init__.py" in out
    assert "mosi  minilm    on cpu" in out and "samples/s" in out
    assert f"thne from {site}/thne; operations" in out and "ATen ops per step" in out
    assert "mosi  minilm    batch 32, full lengths, on cpu: " in out
    assert "would run: " in out and "device_agreement.py --device cuda" in out
    # The packed step, last: one and two MOSI-size jobs.
    assert "packed jobs on cpu" in out and "recommendation: jobs per GPU mosi " in out
    assert (tmp_path / "out" / "packed_throughput" / "packed_throughput.tsv").is_file()
    shutil.rmtree(site, ignore_errors=True)


# What a checkout holds that --prepare and the check read: copies, so that the script's own
# folder (its REPO) is this copy and nothing is written into the real checkout.
CHECKOUT = ("workflow", "config", "profiles", "resources", "thne", "benchmarks")
CHECKOUT_FILES = ("Snakefile", "pyproject.toml", "README.md", "environment.yml")
# The files the check reads, as gpu_check.sh's DEMO_INPUTS lists them.
DEMO_INPUTS = [
    "data/demo/manifest.tsv",
    *(f"features/demo/{n}.h5" for n in ("text", "audio", "visual")),
    *(f"features/demo/{n}.stats.json" for n in ("audio", "visual")),
]


def checkout_copy(dest):
    dest.mkdir(parents=True)
    for name in CHECKOUT:
        shutil.copytree(REPO / name, dest / name, symlinks=True, ignore=shutil.ignore_patterns(
            "__pycache__", "out"))  # fmt: skip
    for name in CHECKOUT_FILES:
        shutil.copy(REPO / name, dest / name)
    return dest


@pytest.mark.slow
def test_prepare_makes_a_kit_that_runs_the_check_alone(demo_build, tmp_path):
    """--prepare on a built demo (the session's build, copied with Snakemake's records, passed
    as --configfile): the kit holds the wheel, the encoder and exactly the demo files the check
    reads, within what one device call carries. Then, in a copy of the checkout with the kit
    and nothing else (no data/, no features/), the dry run finds every input in the kit and
    the command it would run trains from the kit alone, here on the CPU. Checked against the
    script as it was (the demo inputs read from the checkout's data/ and features/, and sized
    with the extraction shards beside them): exit 2, unknown argument --configfile."""
    root = checkout_copy(tmp_path / "root")
    demo_build.copy_to(root)
    script = root / "benchmarks" / "gpu_check.sh"
    prepare = subprocess.run(
        ["bash", str(script), "--prepare", "--configfile", str(demo_build.config)]
        + ["--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = prepare.stdout + prepare.stderr
    assert prepare.returncode == 0, out[-4000:]
    # The build's features were up to date: nothing extracted again.
    assert "Nothing to be done" in out
    kit = root / ".gpu-check"
    demo = sorted(str(p.relative_to(kit / "demo")) for p in (kit / "demo").rglob("*"))
    assert [p for p in demo if (kit / "demo" / p).is_file()] == sorted(DEMO_INPUTS)
    for name in DEMO_INPUTS:
        assert (kit / "demo" / name).read_bytes() == (root / name).read_bytes(), name
    ready = out.split("ready (", 1)[1]
    assert int(ready.split(" MiB)", 1)[0]) <= 56
    assert (kit / "encoder" / "model.safetensors").is_file()
    assert len(list((kit / "wheels").glob("thne-*.whl"))) == 1

    clean = checkout_copy(tmp_path / "clean")
    shutil.copytree(kit, clean / ".gpu-check")
    out = dry_run(
        clean / "benchmarks" / "gpu_check.sh",
        *("--only", "agreement", "--out", str(tmp_path / "out")),
    )
    assert "inputs missing here: none" in out
    command = out.split("would run: ", 1)[1].splitlines()[0].split()
    assert command[command.index("--root") + 1] == str(clean / ".gpu-check" / "demo")
    # The command as the check would run it, on the CPU and shortened: one epoch, seed 1
    # beside seeds 1 and 2.
    args = command[command.index("benchmarks/device_agreement.py") + 1 :]
    args[args.index("--device") + 1] = "cpu"
    args[args.index("--reference-seeds") + 1] = "1,2"
    args[args.index("--out") + 1] = str(tmp_path / "agreement")
    run = subprocess.run(
        [sys.executable, str(clean / "benchmarks" / "device_agreement.py"), *args]
        + ["--max-epochs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=clean,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    assert "devices agree" in run.stdout
    assert not (clean / "data").exists() and not (clean / "features").exists()


@pytest.mark.slow
def test_packed_dry_run_prints_the_summed_throughput(tmp_path):
    """One and two MiniLM-sized MOSEI-shaped jobs on the CPU, each its own process, one batch
    each after one warm-up batch (gpu_check's dry run covers the MOSI shape): the table has
    a row per count with the jobs' summed samples/s, the two jobs' windows start together,
    and the figures are written. Checked against the summed column computed as the median
    job's samples/s: failed on summed == 2 x median."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "packed_throughput.py"), "--dry-run"]
        + ["--datasets", "mosei", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "summed" in proc.stdout.splitlines()[1]
    assert "recommendation: jobs per GPU mosei " in proc.stdout
    with open(out / "packed_throughput.tsv") as fh:
        rows = {int(r["jobs"]): r for r in csv.DictReader(fh, delimiter="\t")}
    assert set(rows) == {1, 2} and all(r["status"] == "ok" for r in rows.values())
    one, two = rows[1], rows[2]
    assert float(one["summed"]) == pytest.approx(float(one["per_job_median"]))
    assert float(one["ratio"]) == pytest.approx(1.0)
    # The median of two jobs is their mean: the sum is twice it.
    assert float(two["summed"]) == pytest.approx(2 * float(two["per_job_median"]), rel=1e-3)
    ratio = float(two["summed"]) / float(one["summed"])
    assert float(two["ratio"]) == pytest.approx(ratio, rel=1e-3)
    # Both released by the one start time: their windows open within a fraction of a second.
    assert float(two["window_skew_s"]) < 0.5
    for line in proc.stdout.splitlines()[3:5]:
        assert line.split()[:2] in (["mosei", "1"], ["mosei", "2"])
    saved = json.loads((out / "packed_throughput.json").read_text())
    assert saved["recommendation"]["jobs_per_gpu"]["mosei"] in (1, 2)


def test_packed_recommendation_doubles_while_the_gain_holds():
    """The rule behind the recommended jobs per GPU: doubling from one job while the summed
    samples/s grows by 15 %; a failed count ends it; 3x one job read off MOSI's rows.
    Checked against each doubling compared with one job instead of half as many: failed
    with 8 jobs for MOSI."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import packed_throughput as pt

    def rows(dataset, summed, status=None):
        out = []
        for n, s in zip((1, 2, 4, 8), summed, strict=True):
            out.append({"dataset": dataset, "jobs": n, "summed": s, "status": "ok"})
        if status:
            out[-1]["status"] = status
        return out

    table = rows("mosi", [100, 190, 300, 320]) + rows("mosei", [100, 200, 400, 900], "failed")
    pt.add_ratios(table)
    advice = pt.recommend(table, ["mosi", "mosei"], 0.15)
    # 190 >= 115 and 300 >= 218.5, but 320 < 345; MOSEI's 8 jobs failed.
    assert advice["jobs_per_gpu"] == {"mosi": 4, "mosei": 4}
    assert advice["mosi_3x"] and advice["mosi_best_jobs"] == 8
    assert advice["mosi_best_ratio"] == pytest.approx(3.2)
    table[2]["summed"], table[3]["summed"] = 280, 290
    pt.add_ratios(table)
    assert not pt.recommend(table, ["mosi"], 0.15)["mosi_3x"]
