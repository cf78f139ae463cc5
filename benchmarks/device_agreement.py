"""Demo t-HNE trained on one device against the same seeds on another (CUDA against CPU).

Trains the ``thne`` variant with the demo's hyper-parameters (config/config.yaml) from the
demo features the workflow built, ``--seeds`` on ``--device`` and ``--reference-seeds`` on
``--reference``, each run in its own process (reference runs in parallel, sharing the CPUs),
then prints each run's test MAE and correlation, training samples/s and peak device memory.
The devices agree when every seed's test MAE on ``--device`` differs from the same seed's on
``--reference`` by at most twice the reference's standard deviation over seeds: GPU kernels
are not bit-for-bit those of the CPU, so the two runs are two draws of the same training.

    snakemake --cores 8 features/demo/{text,audio,visual}.h5 features/demo/{audio,visual}.stats.json
    python benchmarks/device_agreement.py --device cuda --seeds 1 --reference-seeds 1,2,3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def train_one(
    root: Path, device: str, seed: int, out: Path, max_epochs: int | None, encoder: str | None
) -> dict:
    """Train one seed in this process; its test metrics and speed figures."""
    import torch

    from thne.evaluate.aggregate import evaluate_predictions
    from thne.train.data import load_dataset
    from thne.train.loop import train_run
    from thne.workflow.config import resolve_config
    from thne.workflow.runs import resolve_run

    # The demo's settings from this checkout's config; only the inputs come from ``root``.
    run = resolve_run(resolve_config({}, REPO), "demo", "thne")
    cfg = dataclasses.replace(run, seed=seed)
    if max_epochs is not None:
        cfg = dataclasses.replace(cfg, max_epochs=max_epochs)
    if encoder:
        cfg = dataclasses.replace(cfg, encoder=encoder)
    f = root / "features/demo"
    data = load_dataset(
        root / "data/demo/manifest.tsv",
        f / "text.h5",
        f / "audio.h5",
        f / "visual.h5",
        max_frames=cfg.max_frames,
        visual_stats=f / "visual.stats.json",
        audio_stats=f / "audio.stats.json",
    )
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    valid = train_run(data, cfg, out, device=device)
    seconds = time.perf_counter() - t0
    test = evaluate_predictions(out / "predictions.tsv", out / "metrics.json", seed=seed)
    epochs = json.loads((out / "valid_metrics.json").read_text())["epochs"]
    return {
        "device": device,
        "seed": seed,
        "test_mae": test["mae"],
        "test_corr": test["corr"],
        "valid_mae": valid["mae"],
        "epochs": epochs,
        "train_s": seconds,
        # Training clips per second over the whole run (validation and test passes included).
        "samples_per_s": epochs * len(data.splits["train"]) / seconds,
        "peak_device_mb": torch.cuda.max_memory_allocated(dev) / 2**20
        if dev.type == "cuda"
        else 0.0,
    }


def launch(
    args: argparse.Namespace, role: str, device: str, seed: int, threads: int
) -> subprocess.Popen:
    out = args.out / f"{role}_{device.replace(':', '')}_seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--root", str(args.root), "--out", str(out)]
    cmd += ["--one", f"{device},{seed}"]
    if args.max_epochs is not None:
        cmd += ["--max-epochs", str(args.max_epochs)]
    if args.encoder:
        cmd += ["--encoder", args.encoder]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=open(out / "train.log", "w"), text=True, env=env
    )


def collect(proc: subprocess.Popen, label: str) -> dict:
    stdout, _ = proc.communicate()
    if proc.returncode != 0:
        log = Path(proc.args[proc.args.index("--out") + 1]) / "train.log"
        raise SystemExit(f"{label} failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO,
        help="folder with data/demo/ and features/demo/ (gpu_check.sh passes its kit's demo/)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/device_agreement"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reference", default="cpu")
    parser.add_argument("--seeds", default="1")
    parser.add_argument("--reference-seeds", default="1,2,3")
    parser.add_argument("--max-epochs", type=int, help="fewer epochs than configured (a check)")
    parser.add_argument(
        "--encoder",
        help="the text encoder to fine-tune, instead of the demo's (a local model folder with the "
        "same tokenizer: the one gpu_check.sh carries)",
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.root, args.out = args.root.resolve(), args.out.resolve()

    if args.one:
        device, seed = args.one.split(",")
        threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
        if threads:
            import torch

            torch.set_num_threads(threads)
        r = train_one(args.root, device, int(seed), args.out, args.max_epochs, args.encoder)
        print(json.dumps(r))
        return

    seeds = [int(s) for s in args.seeds.split(",")]
    ref_seeds = [int(s) for s in args.reference_seeds.split(",")]
    if not set(seeds) <= set(ref_seeds):
        raise SystemExit("every --seeds seed must be among --reference-seeds (to compare)")
    cpus = os.cpu_count() or 1
    # The reference runs share the CPUs; the device runs (one after another) get one core.
    ref_threads = max(1, (cpus - 1) // len(ref_seeds))
    t0 = time.perf_counter()
    ref_procs = {s: launch(args, "reference", args.reference, s, ref_threads) for s in ref_seeds}
    runs = []
    for s in seeds:
        runs.append(collect(launch(args, "device", args.device, s, 1), f"{args.device} seed {s}"))
    refs = {s: collect(p, f"{args.reference} seed {s}") for s, p in ref_procs.items()}
    wall = time.perf_counter() - t0
    print(f"all runs in {wall:.0f} s; reference runs with {ref_threads} threads each")

    print(
        f"\n{'device':8s} {'seed':>4s} {'test MAE':>9s} {'corr':>7s} {'epochs':>6s} "
        f"{'train s':>8s} {'samples/s':>10s} {'peak MB':>8s}"
    )
    for r in [*runs, *refs.values()]:
        print(
            f"{r['device']:8s} {r['seed']:4d} {r['test_mae']:9.4f} {r['test_corr']:7.4f} "
            f"{r['epochs']:6d} {r['train_s']:8.1f} {r['samples_per_s']:10.1f} "
            f"{r['peak_device_mb']:8.0f}"
        )
    ref_mae = np.array([r["test_mae"] for r in refs.values()])
    spread = float(ref_mae.std(ddof=1)) if len(ref_mae) > 1 else float("nan")
    print(
        f"\n{args.reference} test MAE over seeds {ref_seeds}: mean {ref_mae.mean():.4f}, "
        f"std {spread:.4f}"
    )
    ok = True
    for r in runs:
        diff = abs(r["test_mae"] - refs[r["seed"]]["test_mae"])
        agree = diff <= 2 * spread
        ok &= agree
        print(
            f"seed {r['seed']}: |{args.device} - {args.reference}| test MAE {diff:.4f} "
            f"{'<=' if agree else '>'} 2 std {2 * spread:.4f}: "
            f"{'agree' if agree else 'DISAGREE'}"
        )
    print("devices agree" if ok else "devices DISAGREE beyond the seed spread")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
