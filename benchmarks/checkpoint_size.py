"""Size of a training checkpoint of the demo's t-HNE, as thne writes it and as it was written
before (one pickled dict of full tensors).

The model is the demo's (all-MiniLM-L6-v2 with its shipped weights, the demo's
hyper-parameters of config/config.yaml), trained for two epochs with the real training step on
the demo's train-split transcripts (resources/demo/label.csv) with random visual and acoustic
frames (their widths change only the small LSTMs). Sizes are printed after epoch 1, when the best
weights are the model's own, and after epoch 2, when they are kept beside it.

    python benchmarks/checkpoint_size.py [--frames 50]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
VISUAL_DIM, ACOUSTIC_DIM = 40, 26


def demo_split(frames: int):
    from thne.text.loader import load_text_tokenizer
    from thne.train.data import SplitTensors

    labels = pd.read_csv(REPO / "resources/demo/label.csv")
    train = labels[labels["mode"] == "train"]
    tokens = {
        k: torch.from_numpy(v)
        for k, v in load_text_tokenizer("all-MiniLM-L6-v2").encode(list(train.text), 50).items()
    }
    n = len(train)
    g = torch.Generator().manual_seed(0)
    return SplitTensors(
        clip_ids=[str(c) for c in train.clip_id],
        texts=list(train.text),
        label=torch.tensor(train.label.to_numpy(), dtype=torch.float32),
        input_ids=tokens["input_ids"],
        attention_mask=tokens["attention_mask"],
        visual=torch.randn(n, frames, VISUAL_DIM, generator=g),
        visual_len=torch.full((n,), frames),
        acoustic=torch.randn(n, frames, ACOUSTIC_DIM, generator=g),
        acoustic_len=torch.full((n,), frames),
    )


def size_mb(obj: dict) -> float:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return len(buf.getvalue()) / 1e6


def old_format(state, best_is_model: bool) -> dict:
    """The checkpoint as thne wrote it before: full tensors, the best weights whole."""
    return {
        "fingerprint": "x" * 64,
        "epoch": state.epoch,
        "progress": None,
        "model": state.model.state_dict(),
        "optimizer": state.opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "order": state.gen.get_state()},
        "history": state.history,
        "best_mae": state.best_mae,
        "best_epoch": state.best_epoch,
        "best_is_model": best_is_model,
        "best_state": None if best_is_model else state.best_weights,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50, help="frames per clip (speed only)")
    args = parser.parse_args()

    from thne.train.checkpoint import TrainingState
    from thne.train.loop import build_model, make_optimiser, seed_everything, train_epoch
    from thne.workflow.config import resolve_config
    from thne.workflow.runs import resolve_run

    cfg = resolve_run(resolve_config({}, REPO), "demo", "thne")
    split = demo_split(args.frames)
    seed_everything(0)
    model = build_model(cfg, VISUAL_DIM, ACOUSTIC_DIM)
    state = TrainingState(model, make_optimiser(model, cfg), torch.Generator().manual_seed(0))
    dev = torch.device("cpu")
    t0, c0 = time.perf_counter(), time.process_time()
    print(f"demo t-HNE, {len(split)} training clips; checkpoint sizes in MB")
    print(f"{'after':<10}{'best weights':<16}{'before':>8}{'now':>8}")
    for epoch, mae in ((1, 1.0), (2, 2.0)):
        state.keep_best()
        losses = train_epoch(state.model, split, state.opt, cfg, state.gen, dev).means()
        state.end_epoch(epoch, losses, {}, {"mae": mae})
        best_is_model = state.best_weights is None
        before = size_mb(old_format(state, best_is_model))
        now = size_mb(state.snapshot(dev))
        where = "the model's" if best_is_model else "kept beside"
        print(f"epoch {epoch:<4}{where:<16}{before:8.1f}{now:8.1f}")
    model_mb = size_mb(dict(state.model.state_dict()))
    print(f"weights alone: {model_mb:.1f} MB")
    print(f"wall {time.perf_counter() - t0:.0f} s, CPU {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
