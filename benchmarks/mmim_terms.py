"""Where MMIM's training signal goes: per loss term, the gradient reaching each part of the model.

Trains MMIM (``thne/model/mmim.py``, two stages of ``thne/train/mmim_optimiser.py``) on a dataset's
prepared features, as ``thne train`` would, and at every batch of the main stage takes the
gradient of each weighted term of L_main on its own: the task loss, alpha times each CPC term
(l_ft, l_fv, l_fa), minus beta times each BA log-likelihood (lld_tv, lld_ta) and each entropy
estimate (h_tv, h_ta). Prints, per epoch, the mean L2 norm of each term's gradient on the text
encoder, the visual and acoustic LSTMs and the fusion network with the regressor (the norm
over a batch where the term is absent counts as 0), the share of batches that have each
entropy term, q(y|x)'s mean variance, the share of the total gradient left after clipping,
and the spread (std) of the predictions on the validation split beside its labels'.

Run the demo's data stages first, then (from the repository root):

    snakemake --cores 2 features/demo/text.h5 features/demo/audio.stats.json \
        features/demo/visual.stats.json
    OMP_NUM_THREADS=1 python benchmarks/mmim_terms.py [--epochs 4] [--seed 1]

Hyper-parameters are the dataset's ``train`` section of --config; --set key=value overrides one
(e.g. --set grad_clip=5.0).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from thne.model.build import build_model
from thne.model.mmim import MMIM, EntropyMemory
from thne.train.config import TrainConfig
from thne.train.data import load_dataset
from thne.train.forward import model_inputs
from thne.train.loop import evaluate, seed_everything
from thne.train.mmim_optimiser import MMIMOptimiser

REPO = Path(__file__).resolve().parents[1]

PARTS = ("text", "visual", "acoustic", "fusion")
TERMS = ("task", "l_ft", "l_fv", "l_fa", "lld_tv", "lld_ta", "h_tv", "h_ta")


def part_of(name: str) -> str | None:
    if name.startswith("text_encoder."):
        return "text"
    if name.startswith("visual_encoder."):
        return "visual"
    if name.startswith("acoustic_encoder."):
        return "acoustic"
    if name.startswith(("fusion.", "regressor.")):
        return "fusion"
    return None


def weight(name: str, cfg: TrainConfig) -> float:
    """The factor of ``name`` in L_main (MMIM.total_loss)."""
    if name == "task":
        return 1.0
    return cfg.alpha if name.startswith("l_") else -cfg.beta


def config(path: Path, dataset: str, overrides: list[str], seed: int) -> TrainConfig:
    """The dataset's MMIM run as the workflow resolves it from ``path`` (a config file read
    as --configfile reads it), with KEY=VALUE overrides and the seed."""
    from thne.workflow.config import resolve_config
    from thne.workflow.runs import resolve_run

    settings = resolve_config(yaml.safe_load(path.read_text()) or {}, REPO)
    values = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in overrides)}
    return replace(resolve_run(settings, dataset, "mmim", values), seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)

    cfg = config(args.config, args.dataset, args.set, args.seed)
    max_frames = cfg.max_frames
    root = Path(".")
    ds = args.dataset
    data = load_dataset(
        root / f"data/{ds}/manifest.tsv",
        root / f"features/{ds}/text.h5",
        root / f"features/{ds}/audio.h5",
        root / f"features/{ds}/visual.h5",
        max_frames=max_frames,
        visual_stats=root / f"features/{ds}/visual.stats.json",
        audio_stats=root / f"features/{ds}/audio.stats.json",
    )
    dev = torch.device("cpu")
    seed_everything(cfg.seed)
    model = build_model(cfg, len(data.visual_names), len(data.acoustic_names)).to(dev)
    assert isinstance(model, MMIM)
    opt = MMIMOptimiser(model, cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    train, valid = data.splits["train"], data.splits["valid"]
    groups = {p: [] for p in PARTS}
    for name, param in model.named_parameters():
        part = part_of(name)
        if part is not None:
            groups[part].append(param)
    main_params = [p for g in opt.main.param_groups for p in g["params"]]
    print(
        f"{ds}: {len(train)} train clips, batch {cfg.batch_size}, alpha {cfg.alpha}, beta "
        f"{cfg.beta}, grad_clip {cfg.grad_clip}, weight_decay {cfg.weight_decay}, seed {cfg.seed}"
    )
    valid_label_std = float(valid.label.std())
    for epoch in range(1, args.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        model.train()
        n = len(train)
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            opt.estimator_step(train.batch(order[start : start + cfg.batch_size]))
        memory = EntropyMemory(cfg.mi_memory)
        norms = {t: {p: 0.0 for p in PARTS} for t in TERMS}
        present = {t: 0 for t in TERMS}
        values = {t: 0.0 for t in TERMS}
        variance = {"tv": 0.0, "ta": 0.0}
        kept, batches = 0.0, 0
        order = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            batch = train.batch(order[start : start + cfg.batch_size])
            out = model(**model_inputs(batch))
            terms = model.losses(out, batch["label"], memory)
            for name, value in terms.items():
                grads = torch.autograd.grad(
                    weight(name, cfg) * value,
                    [p for part in PARTS for p in groups[part]],
                    retain_graph=True,
                    allow_unused=True,
                )
                it = iter(grads)
                for part in PARTS:
                    sq = sum(
                        float(g.pow(2).sum())
                        for g in (next(it) for _ in groups[part])
                        if g is not None
                    )
                    norms[name][part] += sq**0.5
                present[name] += 1
                values[name] += float(value.detach())
            with torch.no_grad():
                for pair, est in (("tv", model.mi_tv), ("ta", model.mi_ta)):
                    variance[pair] += float(est.variance(out.h_t).mean())
            loss = model.total_loss(terms, cfg.alpha, cfg.beta)
            opt.main.zero_grad(set_to_none=True)
            loss.backward()
            total = float(torch.nn.utils.clip_grad_norm_(main_params, cfg.grad_clip))
            kept += min(1.0, cfg.grad_clip / max(total, 1e-12))
            opt.main.step()
            opt.estimator.zero_grad(set_to_none=True)
            model.remember(out, batch["label"], memory)
            batches += 1
        _, pred = evaluate(model, valid, cfg, dev)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"\nepoch {epoch}: valid MAE {float((pred.prediction - pred.label).abs().mean()):.3f}"
            f", prediction std {pred.prediction.std():.3f} (labels {valid_label_std:.3f}); "
            f"q variance tv {variance['tv'] / batches:.3g} ta {variance['ta'] / batches:.3g}; "
            f"share of the gradient kept by the clip {kept / batches:.3f} "
            f"({wall:.0f} s wall, {cpu:.0f} s CPU)"
        )
        print(
            f"{'term':8s} {'present':>7s} {'mean value':>11s} "
            + " ".join(f"{p:>9s}" for p in PARTS)
        )
        for t in TERMS:
            cells = " ".join(f"{norms[t][p] / batches:9.3g}" for p in PARTS)
            mean = values[t] / present[t] if present[t] else float("nan")
            print(f"{t:8s} {present[t] / batches:7.2f} {mean:11.4g} {cells}")


if __name__ == "__main__":
    main()
