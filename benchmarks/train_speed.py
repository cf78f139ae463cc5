"""Training speed and memory of t-HNE on synthetic data shaped like CMU-MOSI and CMU-MOSEI.

1,284 (MOSI) or 16,326 (MOSEI) training clips, 50 text tokens, visual 500 x 35 and acoustic
500 x 74 per clip, trained with the real model and training step (``thne.train.loop``,
``thne.train.thne_optimiser``) and the dataset's hyper-parameters of config/config.yaml.
Encoders are built from a BERT config with random weights, so nothing is downloaded:
``bert-base`` (12 layers, 768 wide, the paper's) and ``minilm`` (6 layers, 384, the demo's).
Prints training samples per second, the time of one epoch, and peak host and device memory,
each encoder and dataset in a fresh process.

On CUDA one whole epoch is trained and timed (bf16 autocast as configured); on CPU, --steps
batches are timed after a warm-up and the epoch time is extrapolated from them.

    python benchmarks/train_speed.py [--device auto|cpu|cuda] [--encoders bert-base,minilm]
        [--datasets mosi,mosei]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENCODERS = {
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072},
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536},
}
TRAIN_CLIPS = {"mosi": 1284, "mosei": 16326}
TEXT_LEN, FRAMES, VISUAL_DIM, ACOUSTIC_DIM = 50, 500, 35, 74


def synthetic_split(n: int, seed: int = 0, device: str = "cpu"):
    """``n`` clips of random tokens and features, at full length (the worst case per clip),
    drawn on ``device`` (the CPU by default, where a real job builds its splits)."""
    import torch

    from thne.train.data import SplitTensors

    g = torch.Generator(device=device).manual_seed(seed)
    lengths = torch.randint(10, TEXT_LEN + 1, (n,), generator=g, device=device)
    mask = (torch.arange(TEXT_LEN, device=device)[None, :] < lengths[:, None]).long()
    ids = torch.randint(1000, 30000, (n, TEXT_LEN), generator=g, device=device) * mask
    ids[:, 0] = 101  # [CLS]
    return SplitTensors(
        clip_ids=[f"c{i}" for i in range(n)],
        texts=[""] * n,
        label=torch.rand(n, generator=g, device=device) * 6 - 3,
        input_ids=ids,
        attention_mask=mask,
        visual=torch.randn(n, FRAMES, VISUAL_DIM, generator=g, device=device),
        visual_len=torch.full((n,), FRAMES, device=device),
        acoustic=torch.randn(n, FRAMES, ACOUSTIC_DIM, generator=g, device=device),
        acoustic_len=torch.full((n,), FRAMES, device=device),
    )


def train_config(dataset: str, batch_size: int | None = None):
    """The dataset's t-HNE run as the workflow resolves it from config/config.yaml."""
    from thne.workflow.config import resolve_config
    from thne.workflow.runs import resolve_run

    point = {"batch_size": batch_size} if batch_size else None
    return resolve_run(resolve_config({}, REPO), dataset, "thne", point)


@dataclass
class Job:
    """One synthetic training job: the model, its optimiser and a split, on one device."""

    model: Any
    opt: Any
    cfg: Any
    split: Any
    device: Any

    def step(self, k: int) -> None:
        """Trains the split's k-th batch, in the split's order, from its start again after
        its last whole batch."""
        import torch

        size = self.cfg.batch_size
        start = k % (len(self.split) // size) * size
        index = torch.arange(start, start + size, device=self.device)
        self.opt.step("train", self.split.batch(index), {})

    def train(
        self,
        first: int,
        steps: int = 0,
        until: float | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> int:
        """Trains batches ``first``, ``first + 1``, ...: at least ``steps`` of them, and on
        while the clock (``time.time()``) is before ``until`` and while ``stop()`` is false,
        where given. Returns how many it trained; the device may still be working on them."""
        k = first
        while (
            k - first < steps
            or (until is not None and time.time() < until)
            or (stop is not None and not stop())
        ):
            self.step(k)
            k += 1
        return k - first

    def sync(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def build_job(
    encoder: str,
    dataset: str,
    device: str,
    clips: int,
    batch_size: int | None = None,
    split_on_device: bool = False,
) -> Job:
    """t-HNE with a random ``encoder``-sized text encoder and the dataset's hyper-parameters,
    and a synthetic split of ``clips`` clips on ``device``: drawn on the host and moved, as a
    real job loads its splits, or drawn on the device itself (faster, less host memory)."""
    import torch

    from thne.model.thne import THNE
    from thne.text.bert import Bert, BertConfig
    from thne.train.thne_optimiser import THNEOptimiser

    cfg = train_config(dataset, batch_size)
    if clips < cfg.batch_size:
        raise ValueError(f"{clips} clips do not make one batch of {cfg.batch_size}")
    dev = torch.device(device)
    torch.manual_seed(0)
    # The encoder class training uses, at the shipped encoders' sizes (BERT's vocabulary and
    # positions).
    shape = {"vocab_size": 30522, "max_position_embeddings": 512, "num_attention_heads": 12}
    bert = Bert(BertConfig(**shape, **ENCODERS[encoder]))
    d_t = ENCODERS[encoder]["hidden_size"]
    model = THNE(
        bert,
        d_t,
        VISUAL_DIM,
        ACOUSTIC_DIM,
        visual_hidden=cfg.visual_hidden,
        acoustic_hidden=cfg.acoustic_hidden,
        fusion_dim=cfg.fusion_dim,
    ).to(dev)
    opt = THNEOptimiser(model, cfg)
    if split_on_device:
        split = synthetic_split(clips, device=str(dev))
    else:
        split = synthetic_split(clips).to(dev)
    return Job(model, opt, cfg, split, dev)


def measure(
    encoder: str, dataset: str, device: str, steps: int, batch_size: int | None = None
) -> dict:
    """One encoder's figures, in this process (main runs it in a child process)."""
    import torch

    from thne.train.forward import bf16_enabled
    from thne.train.loop import train_epoch

    train_clips = TRAIN_CLIPS[dataset]
    full_epoch = torch.device(device).type == "cuda"
    batch = batch_size or train_config(dataset).batch_size
    job = build_job(
        encoder, dataset, device, train_clips if full_epoch else (steps + 1) * batch, batch_size
    )
    cfg, dev = job.cfg, job.device

    # Warm-up: kernel selection, allocator growth, the fused optimiser's first step.
    job.train(0, steps=2 if full_epoch else 1)
    job.sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if full_epoch:
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        train_epoch(job.model, job.split, job.opt, cfg, gen, dev)
        job.sync()
        epoch_s = time.perf_counter() - t0
        samples_per_s = train_clips / epoch_s
    else:
        t0 = time.perf_counter()
        job.train(1, steps=steps)
        seconds = time.perf_counter() - t0
        samples_per_s = steps * cfg.batch_size / seconds
        epoch_s = train_clips / samples_per_s
    return {
        "encoder": encoder,
        "dataset": dataset,
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu x{torch.get_num_threads()}",
        "batch_size": cfg.batch_size,
        "bf16": bf16_enabled(cfg, dev),
        "measured": "one full epoch" if full_epoch else f"{steps} batches, extrapolated",
        "samples_per_s": samples_per_s,
        "epoch_s": epoch_s,
        "steps_per_epoch": math.ceil(train_clips / cfg.batch_size),
        "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_device_mb": torch.cuda.max_memory_allocated(dev) / 2**20
        if dev.type == "cuda"
        else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--encoders", default="bert-base,minilm")
    parser.add_argument("--datasets", default="mosi,mosei")
    parser.add_argument("--steps", type=int, default=4, help="CPU: batches timed after warm-up")
    parser.add_argument("--batch-size", type=int, help="instead of the dataset's (a check)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.one:
        encoder, dataset = args.one.split(",")
        print(json.dumps(measure(encoder, dataset, args.device, args.steps, args.batch_size)))
        return
    print(
        f"synthetic clips: text {TEXT_LEN}, visual {FRAMES}x{VISUAL_DIM}, acoustic "
        f"{FRAMES}x{ACOUSTIC_DIM}; device {args.device}"
    )
    failed = False
    runs = [(e, d) for d in args.datasets.split(",") for e in args.encoders.split(",")]
    for encoder, dataset in runs:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--one",
                f"{encoder},{dataset}",
                "--device",
                args.device,
                "--steps",
                str(args.steps),
                *(["--batch-size", str(args.batch_size)] if args.batch_size else []),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{dataset} {encoder}: failed\n{proc.stderr[-3000:]}")
            failed = True
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{dataset:5s} {encoder:9s} on {r['device']}: {r['samples_per_s']:8.1f} samples/s, "
            f"epoch {r['epoch_s']:8.1f} s ({r['measured']}; batch {r['batch_size']}, "
            f"bf16 {r['bf16']}), peak host {r['peak_host_mb']:.0f} MB, "
            f"peak device {r['peak_device_mb']:.0f} MB"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
