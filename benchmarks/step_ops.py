"""ATen operations in one t-HNE training step, on synthetic batches shaped like CMU-MOSI and
CMU-MOSEI: how much host work a GPU job launches per step.

The real model and update step (``THNE``, ``THNEOptimiser.step``: forward, the loss terms of
Eq. 9, the s_ft probe's loss, backward, both gradient clips and Adam) with the dataset's
hyper-parameters of config/config.yaml, on one batch of ``benchmarks/train_speed.py``'s
synthetic clips (50 tokens, 500 visual and acoustic frames). Encoders are built from a BERT
config with random weights: ``bert-base`` (the paper's) and ``minilm`` (the demo's).

After one warm-up step (Adam's first step creates its state), one step is counted with a
``TorchDispatchMode``: every ATen operation that reaches the dispatcher below autograd, views
(no kernel, but host time) included. The count is split into forward, backward and update
(clipping and Adam), and by part: the text encoder, and the rest of t-HNE (the visual and
acoustic branches, fusion, the loss terms and the probe); backward operations are credited to
the part whose autograd node runs them. Then ``--steps`` steps are timed without the counter:
CPU time (this process, all threads) beside wall time.

What the CPU count says about a GPU: the step takes the same paths on both where thne chooses
(gradient clipping through ``torch._foreach_norm`` and ``_foreach_mul_``, as
``clip_grad_norm_(foreach=True)``, and Adam's fused kernel). Where PyTorch chooses, the CPU
runs more operations than CUDA: BERT's attention takes ``scaled_dot_product_attention``'s math
fallback on the CPU (28 operations forward and about 25 backward per layer, dropout being on)
where CUDA runs one fused attention operation each way; ``nn.Dropout`` is four operations
forward on the CPU, one on CUDA; and a packed LSTM over clips of unequal lengths (the code
before issue 32) runs step by step on the CPU, about 25,000 operations per modality, where
cuDNN runs one. CUDA's bf16 autocast adds casts that the float32 CPU step does not have.
``--device cuda`` counts on a GPU, its own paths.

``--lengths full`` (the default, as ``train_speed.py``) gives every clip 500 visual and acoustic
steps; ``--lengths clips`` gives them the lengths of clips of 3.0 to 11.6 s.

    python benchmarks/step_ops.py [--device cpu] [--encoders bert-base,minilm]
        [--datasets mosi,mosei] [--lengths full|clips] [--steps 3] [--threads 1] [--top 12]
        [--source DIR] [--json]

``--source DIR`` imports thne from another checkout (e.g. ``git archive REV thne | tar -x -C
DIR``), to print an earlier revision's figures with this benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHASES = ("forward", "backward", "update")
TEXT, REST = "text encoder", "t-HNE"


def count_step(job, batch: dict) -> dict:
    """Counts the ATen operations of ``job``'s update step on ``batch``: by phase, part and op
    name, and which of them are views."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    state = {"phase": "forward", "part": REST}
    ops: Counter = Counter()  # (phase, part, name, is_view) -> count

    class Counting(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            part = state["part"]
            if state["phase"] == "backward":
                node = torch._C._current_autograd_node()
                part = node.metadata.get("part", REST) if node is not None else REST
            elif state["phase"] == "update":
                part = "update"
            ops[state["phase"], part, func.overloadpacket.__name__, func.is_view] += 1
            return func(*args, **(kwargs or {}))

    def enter_text(module, args, kwargs):
        state["part"] = TEXT

    def leave_text(module, args, kwargs, output):
        # Credits the text encoder's autograd nodes to it, for the backward pass.
        state["part"] = REST
        todo = [output.last_hidden_state.grad_fn]
        while todo:
            node = todo.pop()
            if node is None or "part" in node.metadata:
                continue
            node.metadata["part"] = TEXT
            todo.extend(next_node for next_node, _ in node.next_functions)

    encoder = job.model.text_encoder
    hooks = [
        encoder.register_forward_pre_hook(enter_text, with_kwargs=True),
        encoder.register_forward_hook(leave_text, with_kwargs=True),
    ]
    backward = torch.autograd.backward

    def counted_backward(*args, **kwargs):
        state["phase"] = "backward"
        try:
            return backward(*args, **kwargs)
        finally:
            state["phase"] = "update"

    torch.autograd.backward = counted_backward
    try:
        with Counting():
            job.opt.step("train", batch, {})
    finally:
        torch.autograd.backward = backward
        for hook in hooks:
            hook.remove()
    return {"ops": [[*key, n] for key, n in ops.items()]}


def clip_lengths(split, seed: int = 1):
    """``split`` with the visual and acoustic lengths of clips of 3.0 to 11.6 s (Facet at 30 Hz,
    COVAREP at 100 Hz, 500 steps at most: ``benchmarks/memory.py``'s shapes) instead of full
    ones, their padding zero."""
    import dataclasses

    import torch

    g = torch.Generator().manual_seed(seed)
    seconds = torch.empty(len(split)).uniform_(3.0, 11.6, generator=g)
    lengths = {}
    for name, hz in (("visual", 30.0), ("acoustic", 100.0)):
        x = getattr(split, name)
        n = (seconds * hz).long().clamp(1, x.shape[1]).to(x.device)
        pad = torch.arange(x.shape[1], device=x.device)[None, :] >= n[:, None]
        lengths |= {name: x.masked_fill(pad[..., None], 0.0), f"{name}_len": n}
    return dataclasses.replace(split, **lengths)


def measure(
    encoder: str, dataset: str, device: str, steps: int, threads: int, lengths: str = "full"
) -> dict:
    """One encoder and dataset's figures, in this process (main runs it in a child)."""
    import torch
    import train_speed

    import thne

    torch.set_num_threads(threads)
    size = train_speed.train_config(dataset).batch_size
    job = train_speed.build_job(encoder, dataset, device, (steps + 2) * size)
    if lengths == "clips":
        job.split = clip_lengths(job.split)
    job.step(0)  # warm-up: Adam's state, the allocator, cuDNN and cuBLAS
    counted = count_step(job, job.split.batch(torch.arange(size, 2 * size, device=job.device)))
    job.sync()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    job.train(2, steps=steps)
    job.sync()
    return {
        "thne": str(Path(thne.__file__).parent),
        "encoder": encoder,
        "dataset": dataset,
        "device": torch.cuda.get_device_name(job.device) if job.device.type == "cuda" else "cpu",
        "batch_size": size,
        "threads": threads,
        "steps": steps,
        "lengths": lengths,
        "cpu_ms": (time.process_time() - cpu0) / steps * 1e3,
        "wall_ms": (time.perf_counter() - wall0) / steps * 1e3,
        **counted,
    }


def report(r: dict, top: int) -> str:
    """``measure``'s figures as lines of text."""
    ops = [(phase, part, name, view, n) for phase, part, name, view, n in r["ops"]]
    total = sum(n for *_, n in ops)
    kernels = sum(n for *_, view, n in ops if not view)
    lines = [
        f"thne from {r['thne']}; operations as total (not views)",
        f"{r['dataset']:5s} {r['encoder']:9s} batch {r['batch_size']}, {r['lengths']} lengths, "
        f"on {r['device']}: "
        f"{total} ATen ops per step ({kernels} not views); cpu {r['cpu_ms']:.0f} ms, wall "
        f"{r['wall_ms']:.0f} ms per step ({r['threads']} thread(s), {r['steps']} steps)",
    ]
    for phase in PHASES:
        parts, not_views = Counter(), Counter()
        for ph, part, _, view, n in ops:
            if ph == phase:
                parts[part] += n
                not_views[part] += 0 if view else n
        split = ", ".join(f"{part} {n} ({not_views[part]})" for part, n in sorted(parts.items()))
        lines.append(f"  {phase:8s} {sum(parts.values()):5d} ({sum(not_views.values())}): {split}")
    names = Counter()
    for *_, name, _, n in ops:
        names[name] += n
    lines.append("  top: " + ", ".join(f"{name} {n}" for name, n in names.most_common(top)))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--encoders", default="bert-base,minilm")
    parser.add_argument("--datasets", default="mosi,mosei")
    parser.add_argument("--steps", type=int, default=3, help="steps timed after the count")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--top", type=int, default=12, help="most frequent ops listed")
    parser.add_argument(
        "--lengths",
        choices=("full", "clips"),
        default="full",
        help="visual and acoustic sequences of 500 steps each, or of clips of 3-11.6 s",
    )
    parser.add_argument("--source", type=Path, help="a checkout to import thne from")
    parser.add_argument("--json", action="store_true", help="one JSON line per measurement")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        encoder, dataset = args.one.split(",")
        figures = measure(encoder, dataset, args.device, args.steps, args.threads, args.lengths)
        print(json.dumps(figures))
        return
    env = dict(os.environ)
    if args.source:
        # Ahead of the installed thne; train_speed comes from this script's folder.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(args.source.resolve()), env.get("PYTHONPATH")])
        )
    failed = False
    for dataset in args.datasets.split(","):
        for encoder in args.encoders.split(","):
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    *("--one", f"{encoder},{dataset}", "--device", args.device),
                    *("--steps", str(args.steps), "--threads", str(args.threads)),
                    *("--lengths", args.lengths),
                ],
                capture_output=True,
                text=True,
                env=env,
            )
            if proc.returncode != 0:
                print(f"{dataset} {encoder}: failed\n{proc.stderr[-3000:]}")
                failed = True
                continue
            line = proc.stdout.strip().splitlines()[-1]
            print(line if args.json else report(json.loads(line), args.top), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
