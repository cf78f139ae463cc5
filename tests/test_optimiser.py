"""The interface between the training loop and a model's optimisation (thne/train/optimiser.py):
t-HNE's and MMIM's optimisers keep it, and a third model that brings its own trains through
the loop unchanged, stage by stage, and resumes exactly from a checkpoint written mid-stage."""

import os
import signal
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from test_checkpoint import OUTPUTS
from test_model import DA, DV, B, batch, tiny_bert
from test_train import assert_same_weights, checkpoint_record, load, make_dataset
from torch import nn

from thne.model.build import build_model
from thne.train import loop
from thne.train.checkpoint import CHECKPOINT, TrainingStopped
from thne.train.config import TrainConfig
from thne.train.loop import OPTIMISERS, make_optimiser, train_run
from thne.train.optimiser import Optimiser


@pytest.mark.parametrize("variant", ["thne", "text_only", "mmim"])
def test_each_models_optimiser_keeps_the_interface(variant):
    """Each shipped model's optimiser has the interface's stages, step and state dict: a step
    in each stage returns detached 0-d loss terms and moves the model; the state dict loads
    into a fresh optimiser of the same model.

    Break caught: a model whose optimiser is missing from OPTIMISERS (KeyError)."""
    torch.manual_seed(0)
    cfg = TrainConfig.preset(variant, visual_hidden=4, acoustic_hidden=4, fusion_dim=16)
    model = build_model(cfg, DV, DA, encoder=tiny_bert()).train()
    opt = make_optimiser(model, cfg)
    assert isinstance(opt, Optimiser)
    assert opt.stages and all(isinstance(s, str) for s in opt.stages)
    labelled = {**batch(), "label": torch.linspace(-2, 2, B)}
    for stage in opt.stages:
        before = [p.detach().clone() for p in model.parameters()]
        terms = opt.step(stage, labelled, {})
        assert terms and all(t.dim() == 0 and not t.requires_grad for t in terms.values())
        moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)]
        assert any(moved), stage
    fresh = make_optimiser(model, cfg)
    fresh.load_state_dict(opt.state_dict())
    assert same(fresh.state_dict(), opt.state_dict())


def same(a, b) -> bool:
    """Equal nested containers, tensors equal to the bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return a == b


class Toy(nn.Module):
    """A third model: a linear map of the clip's mean visual and acoustic frames, plus an
    offset. Nothing of it is known to the loop."""

    def __init__(self, visual_dim: int, acoustic_dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(visual_dim + acoustic_dim, 1)
        self.offset = nn.Parameter(torch.zeros(()))

    def forward(self, input_ids, attention_mask, visual, visual_len, acoustic, acoustic_len):
        means = [visual.sum(1) / visual_len[:, None], acoustic.sum(1) / acoustic_len[:, None]]
        return SimpleNamespace(pred=self.head(torch.cat(means, dim=-1)).squeeze(-1) + self.offset)

    def losses(self, out, label):
        return {"task": (out.pred - label).abs().mean()}

    def total_loss(self, terms, alpha, beta):
        return terms["task"]

    def cpc_scores(self, out):
        return {}


class ToyOptimiser:
    """Two stages, each with its own Adam: the linear map, then the offset. Each stage carries
    its clip count (a number) and label sum (a tensor) from batch to batch, and reports both:
    a carry lost on resume, or kept from one stage into the next, changes the history."""

    stages = ("head", "offset")
    # Every step: (stage, batch size, clips carried into it, its loss).
    log: list[tuple[str, int, int, float]] = []

    def __init__(self, model: Toy, cfg: TrainConfig) -> None:
        self.model = model
        self.opts = {
            "head": torch.optim.Adam(model.head.parameters(), lr=cfg.lr),
            "offset": torch.optim.Adam([model.offset], lr=cfg.lr),
        }

    def step(self, stage, batch, carry):
        n = batch["label"].shape[0]
        out = self.model(**{k: v for k, v in batch.items() if k != "label"})
        loss = self.model.losses(out, batch["label"])["task"]
        self.opts[stage].zero_grad(set_to_none=True)
        loss.backward()
        self.opts[stage].step()
        self.log.append((stage, n, carry.get("clips", 0), float(loss.detach())))
        carry["clips"] = carry.get("clips", 0) + n
        carry["labels"] = carry.get("labels", torch.zeros(())) + batch["label"].sum()
        return {
            "task": loss.detach(),
            "total": loss.detach(),
            f"{stage}_clips": torch.tensor(float(carry["clips"])),
            f"{stage}_labels": carry["labels"],
        }

    def state_dict(self):
        return {k: v.state_dict() for k, v in self.opts.items()}

    def load_state_dict(self, state):
        for k, v in self.opts.items():
            v.load_state_dict(state[k])


# Six training clips in batches of four: two steps per stage, four per epoch.
TOY = dict(batch_size=4, max_epochs=3, patience=3, seed=2, lr=0.05, checkpoint_every_s=3600)


@pytest.fixture
def toy(monkeypatch):
    """The loop builds Toy and finds ToyOptimiser for it, as for a model of the package."""
    monkeypatch.setattr(loop, "build_model", lambda cfg, v, a: Toy(v, a))
    monkeypatch.setitem(OPTIMISERS, Toy, ToyOptimiser)
    ToyOptimiser.log.clear()
    return ToyOptimiser.log


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("toy"))


def test_a_third_model_trains_through_the_loop(toy, toy_data, tmp_path):
    """Each epoch runs the stages in order, each over all six training clips in batches of
    four, its carry empty at its start and kept from batch to batch; history.tsv has each
    term's mean over the clips of the batches that gave it.

    Break caught (checked by hand): a stage that starts with the last stage's carry."""
    train_run(load(toy_data), TrainConfig(**TOY), tmp_path / "run")
    steps = [s[:3] for s in toy]
    epoch = [("head", 4, 0), ("head", 2, 4), ("offset", 4, 0), ("offset", 2, 4)]
    assert steps == epoch * TOY["max_epochs"]
    hist = pd.read_csv(tmp_path / "run" / "history.tsv", sep="\t")
    train = hist[hist.split == "train"].set_index("epoch")
    for e in range(TOY["max_epochs"]):
        done = toy[4 * e : 4 * e + 4]
        mean = sum(n * loss for _, n, _, loss in done) / sum(n for _, n, _, _ in done)
        assert train.loc[e + 1, "task"] == pytest.approx(mean, rel=1e-5)
    # Clips carried after each batch: 4 after the batch of four, 6 after the batch of two.
    assert train[["head_clips", "offset_clips"]].to_numpy() == pytest.approx((4 * 4 + 6 * 2) / 6)
    assert hist[hist.split == "valid"][["head_clips", "offset_labels"]].isna().all().all()


@pytest.mark.parametrize(
    "stop_at, next_start",
    [
        (1, 4),  # inside the first stage
        (2, 6),  # at the end of the first stage: the second starts with nothing carried
        (3, 10),  # inside the second stage
        (6, 6),  # epoch 2, at the end of the first stage
    ],
)
def test_a_third_model_resumes_mid_stage_exactly(toy, toy_data, tmp_path, stop_at, next_start):
    """A SIGTERM during a step writes a checkpoint after it, with the stage's carry; started
    again, the run ends as an unbroken one.

    Breaks caught (checked by hand): the carry left out of the checkpoint; a second stage that
    starts with the first stage's carry after a resume at the end of the first."""
    cfg = TrainConfig(**TOY)
    train_run(load(toy_data), cfg, tmp_path / "whole")
    toy.clear()

    real_step = ToyOptimiser.step

    def step(self, *args):
        if len(toy) == stop_at - 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(self, *args)

    out = tmp_path / "stopped"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ToyOptimiser, "step", step)
        with pytest.raises(TrainingStopped):
            train_run(load(toy_data), cfg, out)
    assert len(toy) == stop_at
    record = checkpoint_record(out / CHECKPOINT)
    assert record["epoch"] == (stop_at - 1) // 4 and record["next_start"] == next_start
    train_run(load(toy_data), cfg, out)
    for name in OUTPUTS:
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text(), name
    assert_same_weights(tmp_path / "whole", out)
