"""Training throughput of 1, 2, 4 and 8 jobs sharing one GPU: how many jobs one GPU should run.

Each job is its own process (its own python, as a Snakemake job is), training t-HNE on a
synthetic MOSI- or MOSEI-shaped split with a bert-base-sized text encoder of random weights
and the dataset's batch size and hyper-parameters (benchmarks/train_speed.py builds the job
and runs its steps; nothing is downloaded). The split holds as many clips as the dataset's
three splits together (benchmarks/memory.py's counts), kept on the device as a real job keeps
them, so the memory figures are a real job's; it is drawn on the device, which is faster.

How one configuration (a dataset, N jobs) is measured:

1. N workers start together; each builds its job and trains ``--warm`` batches (kernel
   selection, allocator growth, the optimiser's first step), then says it is ready through
   a file in a scratch folder and, on a GPU, goes on training while it waits;
2. when all are ready, one start time a second ahead is written for all of them; each trains
   until then, then counts the batches it trains in the ``--window`` seconds from it (at
   least ``--min-steps``), synchronising the device at both ends of its window;
3. each reports its samples/s over its window and its peak memory, then goes on training
   until every worker has reported, so that no window ends with fewer jobs running.

Printed per configuration: samples/s of the median job and of the slowest, the jobs' summed
samples/s, its ratio to one job's, the peak GPU memory (``torch.cuda.max_memory_allocated``)
of the largest job and summed over the jobs, and the device's memory in use at the end of the
window (``torch.cuda.mem_get_info``: every process's CUDA context and cached blocks too).
Written to ``--out``: packed_throughput.tsv (one row per configuration) and
packed_throughput.json (rows, device, settings, recommendation), rewritten after each row.

The recommendation: per dataset, the largest N reached by doubling from one job while each
doubling still adds at least ``--min-gain`` (15 %) to the summed samples/s and no job fails;
and whether the summed samples/s of MOSI-size jobs reaches 3x one job's at some N.

Jobs on one GPU share it by time-slicing between processes (no MPS here): kernels of two jobs
do not run at the same moment, but one job's kernels fill the gaps another leaves while its
Python launches the next kernels or waits for the host. What packing gains is those gaps. A
GPU in exclusive-process compute mode admits one process: rows of more jobs fail there, with
the workers' errors printed.

    python benchmarks/packed_throughput.py [--device cuda:0] [--jobs 1,2,4,8] [--window 8]
    python benchmarks/packed_throughput.py --dry-run   # CPU, MiniLM-sized, 1 and 2 jobs, 1 step
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import train_speed
from memory import SHAPES

# Scratch-folder files of the workers' barrier.
READY, GO, STOP = "ready-{}", "go", "stop"
TABLE_COLUMNS = (
    "dataset",
    "encoder",
    "jobs",
    "batch_size",
    "per_job_median",
    "per_job_min",
    "summed",
    "ratio",
    "peak_alloc_mb_max",
    "peak_alloc_mb_sum",
    "device_used_mb",
    "window_skew_s",
    "wall_s",
    "status",
)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wait_for(path: Path, deadline: float, busy) -> None:
    """Until ``path`` exists, training (``busy``, on a GPU) or sleeping; an error after
    ``deadline`` (the parent has gone)."""

    def there() -> bool:
        if time.time() > deadline:
            raise TimeoutError(f"no {path.name} in {path.parent} by the deadline")
        return path.exists()

    if busy is not None:
        busy(there)
    else:
        while not there():
            time.sleep(0.05)


def worker(args: argparse.Namespace) -> None:
    """One job: build, warm up, then train through the common window (see the module doc)."""
    import torch

    from thne.train.forward import bf16_enabled

    if args.threads:
        torch.set_num_threads(args.threads)
    sync_dir = Path(args.sync_dir)
    deadline = time.time() + args.timeout
    job = train_speed.build_job(
        args.encoder,
        args.dataset,
        args.device,
        clips=args.clips,
        batch_size=args.batch_size,
        split_on_device=True,
    )
    on_gpu = job.device.type == "cuda"
    # On a GPU a worker keeps the device busy while it waits, so every window starts and ends
    # with all N jobs training; on the CPU (the dry run) waiting workers sleep.
    keep_busy = on_gpu
    k = job.train(0, steps=args.warm)
    job.sync()
    write_atomic(sync_dir / READY.format(args.index), "")

    def busy(stop):
        nonlocal k
        k += job.train(k, stop=stop)

    wait_for(sync_dir / GO, deadline, busy if keep_busy else None)
    start = float((sync_dir / GO).read_text())
    if keep_busy:
        k += job.train(k, until=start)
    else:
        time.sleep(max(0.0, start - time.time()))
    job.sync()
    t0, wall0 = time.perf_counter(), time.time()
    steps = job.train(k, steps=args.min_steps, until=start + args.window)
    k += steps
    job.sync()
    seconds = time.perf_counter() - t0
    free, total = torch.cuda.mem_get_info(job.device) if on_gpu else (0, 0)
    result = {
        "index": args.index,
        "steps": steps,
        "samples": steps * job.cfg.batch_size,
        "seconds": seconds,
        "samples_per_s": steps * job.cfg.batch_size / seconds,
        "window_start": wall0,
        "window_end": wall0 + seconds,
        "batch_size": job.cfg.batch_size,
        "bf16": bf16_enabled(job.cfg, job.device),
        "device": torch.cuda.get_device_name(job.device) if on_gpu else "cpu",
        "device_total_mb": total / 2**20,
        "device_used_mb": (total - free) / 2**20,
        "peak_alloc_mb": torch.cuda.max_memory_allocated(job.device) / 2**20 if on_gpu else 0.0,
        "peak_reserved_mb": torch.cuda.max_memory_reserved(job.device) / 2**20 if on_gpu else 0.0,
        "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    write_atomic(sync_dir / f"result-{args.index}.json", json.dumps(result))
    if keep_busy:
        wait_for(sync_dir / STOP, deadline, busy)


def run_configuration(args: argparse.Namespace, dataset: str, jobs: int) -> dict:
    """Starts ``jobs`` workers on one device, releases them together, collects their figures."""
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="thne-packed-") as scratch:
        sync_dir = Path(scratch)
        clips = args.clips or sum(SHAPES[dataset].clips.values())
        procs, logs = [], []
        for i in range(jobs):
            log = open(sync_dir / f"worker-{i}.log", "w")
            logs.append(log)
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                "--index",
                str(i),
                "--sync-dir",
                str(sync_dir),
                "--dataset",
                dataset,
                "--encoder",
                args.encoder,
                "--device",
                args.device,
                "--clips",
                str(clips),
                "--warm",
                str(args.warm),
                "--min-steps",
                str(args.min_steps),
                "--window",
                str(args.window),
                "--threads",
                str(args.threads),
                "--timeout",
                str(args.timeout),
                *(["--batch-size", str(args.batch_size)] if args.batch_size else []),
            ]
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
        row: dict = {"dataset": dataset, "encoder": args.encoder, "jobs": jobs}
        try:
            results = collect(procs, sync_dir, jobs, t_start + args.timeout)
        except RuntimeError as exc:
            row.update(status=f"failed: {exc}")
            return row
        finally:
            (sync_dir / STOP).touch()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for log in logs:
                log.close()
            if "status" in row:
                for i in range(jobs):
                    tail = (sync_dir / f"worker-{i}.log").read_text()[-2000:]
                    print(f"-- worker {i} of {jobs} ({dataset}), its output's end:\n{tail}")
        for proc in procs:
            if proc.returncode != 0:
                row.update(status=f"failed: a worker exited {proc.returncode} after its window")
                return row
    rates = [r["samples_per_s"] for r in results]
    row.update(
        batch_size=results[0]["batch_size"],
        per_job_median=statistics.median(rates),
        per_job_min=min(rates),
        summed=sum(rates),
        peak_alloc_mb_max=max(r["peak_alloc_mb"] for r in results),
        peak_alloc_mb_sum=sum(r["peak_alloc_mb"] for r in results),
        peak_reserved_mb_max=max(r["peak_reserved_mb"] for r in results),
        peak_host_mb_max=max(r["peak_host_mb"] for r in results),
        device_used_mb=max(r["device_used_mb"] for r in results),
        device_total_mb=results[0]["device_total_mb"],
        window_skew_s=max(r["window_start"] for r in results)
        - min(r["window_start"] for r in results),
        steps_min=min(r["steps"] for r in results),
        bf16=results[0]["bf16"],
        device_name=results[0]["device"],
        wall_s=time.time() - t_start,
        status="ok",
    )
    return row


def collect(procs: list, sync_dir: Path, jobs: int, deadline: float) -> list[dict]:
    """Waits for every worker to be ready, writes the common start, waits for their figures."""

    def wait_all(name: str, what: str) -> None:
        while not all((sync_dir / name.format(i)).exists() for i in range(jobs)):
            for i, proc in enumerate(procs):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {i} exited {proc.returncode} before {what}")
            if time.time() > deadline:
                raise RuntimeError(f"timed out waiting for the workers' {what}")
            time.sleep(0.05)

    wait_all(READY, "its warm-up ended")
    write_atomic(sync_dir / GO, repr(time.time() + 1.0))
    wait_all("result-{}.json", "its figures")
    return [json.loads((sync_dir / f"result-{i}.json").read_text()) for i in range(jobs)]


def add_ratios(rows: list[dict]) -> None:
    one = {r["dataset"]: r["summed"] for r in rows if r["jobs"] == 1 and r["status"] == "ok"}
    for r in rows:
        if r["status"] == "ok" and r["dataset"] in one:
            r["ratio"] = r["summed"] / one[r["dataset"]]


def recommend(rows: list[dict], datasets: list[str], min_gain: float) -> dict:
    """Per dataset, the largest N reached by doubling from 1 while each doubling adds at least
    ``min_gain`` to the summed samples/s; and whether MOSI-size jobs reach 3x one job."""
    ok = {(r["dataset"], r["jobs"]): r for r in rows if r["status"] == "ok"}
    jobs_per_gpu = {}
    for d in datasets:
        n = 1 if (d, 1) in ok else None
        while (
            n and (d, 2 * n) in ok and ok[d, 2 * n]["summed"] >= (1 + min_gain) * ok[d, n]["summed"]
        ):
            n *= 2
        jobs_per_gpu[d] = n
    mosi = [r for r in ok.values() if r["dataset"] == "mosi" and "ratio" in r]
    best = max(mosi, key=lambda r: r["ratio"], default=None)
    return {
        "rule": f"double the jobs from 1 while the summed samples/s grows by >= "
        f"{min_gain:.0%} and every job runs",
        "jobs_per_gpu": jobs_per_gpu,
        "mosi_3x": None if best is None else best["ratio"] >= 3.0,
        "mosi_best_ratio": None if best is None else best["ratio"],
        "mosi_best_jobs": None if best is None else best["jobs"],
    }


def format_row(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['dataset']:5s} {r['jobs']:4d}  {r['status']}"
    return (
        f"{r['dataset']:5s} {r['jobs']:4d} {r['batch_size']:5d} {r['per_job_median']:9.1f} "
        f"{r['per_job_min']:9.1f} {r['summed']:9.1f} {r.get('ratio', float('nan')):6.2f} "
        f"{r['peak_alloc_mb_max']:9.0f} {r['peak_alloc_mb_sum']:9.0f} "
        f"{r['device_used_mb']:9.0f} {r['wall_s']:6.1f}"
    )


HEADER = "\n".join(
    "{:5s} {:>4} {:>5} {:>9} {:>9} {:>9} {:>6} {:>9} {:>9} {:>9} {:>6}".format(*cells)
    for cells in (
        ("data", "jobs", "batch", "per job", "slowest", "summed", "ratio", "peak GPU", "peak GPU")
        + ("device", "wall"),
        ("", "", "", "median", "job", "samples/s", "to 1", "MiB/job", "MiB, sum", "used MiB")
        + ("s",),
    )
)


def write_outputs(out: Path, rows: list[dict], meta: dict) -> None:
    from thne.io import atomic_path, write_json

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "packed_throughput.json", {**meta, "rows": rows})
    lines = ["\t".join(TABLE_COLUMNS)]
    for r in rows:
        cells = []
        for c in TABLE_COLUMNS:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("\t".join(cells))
    with atomic_path(out / "packed_throughput.tsv") as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="where every job trains")
    parser.add_argument("--datasets", default="mosi,mosei")
    parser.add_argument("--jobs", default="1,2,4,8", help="concurrent jobs, one count per row")
    parser.add_argument("--encoder", default="bert-base", choices=sorted(train_speed.ENCODERS))
    parser.add_argument("--window", type=float, default=8.0, help="seconds measured per job")
    parser.add_argument("--min-steps", type=int, default=3, help="batches measured at least")
    parser.add_argument("--warm", type=int, default=3, help="batches trained before the window")
    parser.add_argument("--batch-size", type=int, help="instead of the dataset's (a check)")
    parser.add_argument("--clips", type=int, default=0, help="clips per job (0: the dataset's)")
    parser.add_argument("--threads", type=int, default=4, help="torch CPU threads per job")
    parser.add_argument("--min-gain", type=float, default=0.15)
    parser.add_argument(
        "--budget", type=float, default=0, help="seconds; rows that would not fit are skipped"
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds per configuration")
    parser.add_argument("--out", type=Path, default=Path("results/gpu_check/packed_throughput"))
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="on the CPU, MiniLM-sized, batch 4, 1 and 2 jobs, 1 step each: a check",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--sync-dir", help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.dry_run:
        args.device, args.encoder, args.batch_size = "cpu", "minilm", 4
        args.window, args.min_steps, args.warm, args.threads = 0.0, 1, 1, 1
        if args.jobs == parser.get_default("jobs"):
            args.jobs = "1,2"
        args.clips = args.clips or 8
    datasets = args.datasets.split(",")
    counts = [int(n) for n in args.jobs.split(",")]
    print(
        f"{', '.join(map(str, counts))} concurrent {args.encoder}-sized t-HNE jobs on "
        f"{args.device}, each its own process; {args.window:g} s window (at least "
        f"{args.min_steps} batches) after {args.warm} warm-up batches; samples/s of the "
        "median and the slowest job, and summed over the jobs",
        flush=True,
    )
    print(HEADER, flush=True)
    t0 = time.time()
    rows: list[dict] = []
    meta = {
        "device": args.device,
        "encoder": args.encoder,
        "window_s": args.window,
        "min_steps": args.min_steps,
        "warm": args.warm,
        "threads_per_job": args.threads,
        "min_gain": args.min_gain,
    }
    last_wall = 0.0
    for dataset in datasets:
        for jobs in counts:
            # The next row takes about as long as the last, a little more with more workers.
            if args.budget and time.time() - t0 + 1.3 * last_wall > args.budget:
                row = {"dataset": dataset, "jobs": jobs, "status": "skipped: time budget"}
            elif any(r["dataset"] == dataset and r["status"].startswith("failed") for r in rows):
                row = {"dataset": dataset, "jobs": jobs, "status": "skipped: fewer jobs failed"}
            else:
                row = run_configuration(args, dataset, jobs)
                last_wall = row.get("wall_s", last_wall)
            rows.append(row)
            add_ratios(rows)
            print(format_row(row), flush=True)
            write_outputs(args.out, rows, meta)
    advice = recommend(rows, datasets, args.min_gain)
    write_outputs(args.out, rows, {**meta, "recommendation": advice})
    per = ", ".join(f"{d} {n or '-'}" for d, n in advice["jobs_per_gpu"].items())
    if advice["mosi_3x"] is None:
        three = "MOSI-size packed >= 3x one job: not measured"
    else:
        three = (
            f"MOSI-size packed >= 3x one job: {'yes' if advice['mosi_3x'] else 'no'} "
            f"(best {advice['mosi_best_ratio']:.2f}x at {advice['mosi_best_jobs']} jobs)"
        )
    print(f"recommendation: jobs per GPU {per} ({advice['rule']}); {three}")
    print(f"written: {args.out}/packed_throughput.tsv and .json ({time.time() - t0:.0f} s)")
    sys.exit(1 if any(r["status"].startswith("failed") for r in rows) else 0)


if __name__ == "__main__":
    main()
