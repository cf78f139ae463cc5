"""Training speed and memory of t-HNE on synthetic data shaped like CMU-MOSI and CMU-MOSEI.

1,284 (MOSI) or 16,326 (MOSEI) training clips, 50 text tokens, visual 500 x 35 and acoustic
500 x 74 per clip, trained with the real model and training step (``thne.train.loop``) and the
dataset's hyper-parameters of config/config.yaml. Encoders are built from a BERT config with
random weights, so nothing is downloaded: ``bert-base`` (12 layers, 768 wide, the paper's)
and ``minilm`` (6 layers, 384, the demo's). Prints training samples per second, the time of
one epoch, and peak host and device memory, each encoder and dataset in a fresh process.

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
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ENCODERS = {
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072},
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536},
}
TRAIN_CLIPS = {"mosi": 1284, "mosei": 16326}
TEXT_LEN, FRAMES, VISUAL_DIM, ACOUSTIC_DIM = 50, 500, 35, 74


def synthetic_split(n: int, seed: int = 0):
    """``n`` clips of random tokens and features, at full length (the worst case per clip)."""
    import torch

    from thne.train.data import SplitTensors

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(10, TEXT_LEN + 1, (n,), generator=g)
    mask = (torch.arange(TEXT_LEN)[None, :] < lengths[:, None]).long()
    ids = torch.randint(1000, 30000, (n, TEXT_LEN), generator=g) * mask
    ids[:, 0] = 101  # [CLS]
    return SplitTensors(
        clip_ids=[f"c{i}" for i in range(n)],
        texts=[""] * n,
        label=torch.rand(n, generator=g) * 6 - 3,
        input_ids=ids,
        attention_mask=mask,
        visual=torch.randn(n, FRAMES, VISUAL_DIM, generator=g),
        visual_len=torch.full((n,), FRAMES),
        acoustic=torch.randn(n, FRAMES, ACOUSTIC_DIM, generator=g),
        acoustic_len=torch.full((n,), FRAMES),
    )


def measure(
    encoder: str, dataset: str, device: str, steps: int, batch_size: int | None = None
) -> dict:
    """One encoder's figures, in this process (main runs it in a child process)."""
    import torch
    from transformers import BertConfig, BertModel

    from thne.model.thne import THNE
    from thne.train.config import TrainConfig
    from thne.train.forward import bf16_enabled
    from thne.train.loop import make_optimizer, train_epoch, train_step

    train = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["datasets"][dataset]
    train = train["train"]
    train_clips = TRAIN_CLIPS[dataset]
    if batch_size:
        train = {**train, "batch_size": batch_size}
    cfg = TrainConfig(
        **{k: train[k] for k in ("batch_size", "lr", "bert_lr", "alpha", "beta", "bf16")},
        visual_hidden=train["visual_hidden"],
        acoustic_hidden=train["acoustic_hidden"],
        fusion_dim=train["fusion_dim"],
        grad_clip=train["grad_clip"],
    )
    dev = torch.device(device)
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(num_attention_heads=12, **ENCODERS[encoder]), add_pooling_layer=False
    )
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
    opt = make_optimizer(model, cfg)
    full_epoch = dev.type == "cuda"
    n = train_clips if full_epoch else (steps + 1) * cfg.batch_size
    split = synthetic_split(n).to(dev)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # Warm-up: kernel selection, allocator growth, the fused optimiser's first step.
    for k in range(2 if full_epoch else 1):
        index = torch.arange(k * cfg.batch_size, (k + 1) * cfg.batch_size, device=dev)
        train_step(model, split.batch(index), opt, cfg, dev)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if full_epoch:
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        train_epoch(model, split, opt, cfg, gen, dev)
        sync()
        epoch_s = time.perf_counter() - t0
        samples_per_s = train_clips / epoch_s
    else:
        t0 = time.perf_counter()
        for k in range(1, steps + 1):
            index = torch.arange(k * cfg.batch_size, (k + 1) * cfg.batch_size, device=dev)
            train_step(model, split.batch(index), opt, cfg, dev)
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
