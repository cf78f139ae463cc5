"""MMIM: each loss term against a direct computation, the entropy memory, the two optimisers,
and a short run through the trainer whose metrics aggregate."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import multivariate_normal
from test_model import DA, DV, B, batch, tiny_bert
from test_train import dataset, load  # noqa: F401 - the fixture is used by name

from thne.evaluate.aggregate import aggregate_runs, evaluate_predictions
from thne.model.mmim import MMIM, RIDGE, EntropyMemory, mixture_entropy
from thne.predict.runs import read_run
from thne.train.config import TrainConfig
from thne.train.loop import train_run
from thne.train.two_stage import estimator_step, main_step, make_optimizers

HV, HA = 3, 2
LABEL = torch.tensor([1.5, -2.0, 0.0, 0.4, -0.3, 2.2])


def make_mmim(seed=0):
    torch.manual_seed(seed)
    bert, d_t = tiny_bert()
    return MMIM(bert, d_t, DV, DA, visual_hidden=HV, acoustic_hidden=HA, fusion_dim=16).eval()


def train_batch():
    return {**batch(), "label": LABEL}


def inputs(b):
    return {k: v for k, v in b.items() if k != "label"}


def test_log_likelihood_is_the_gaussian_density():
    model = make_mmim()
    out = model(**batch())
    terms = model.losses(out, LABEL)
    for pair, est, y in (("tv", model.mi_tv, out.h_v), ("ta", model.mi_ta, out.h_a)):
        mu, logvar = est.mu(out.h_t), est.logvar(out.h_t)
        q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
        direct = q.log_prob(y).sum(-1).mean()
        assert torch.allclose(terms[f"lld_{pair}"], direct, atol=1e-5)
    # Stage one's loss is the negative of the two, on detached pairs.
    nll = model.estimator_loss(out)
    assert torch.allclose(nll, -(terms["lld_tv"] + terms["lld_ta"]), atol=1e-6)
    nll.backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert all(p.grad is None for p in model.visual_encoder.parameters())
    assert model.mi_tv.mu[0].weight.grad is not None


def test_cpc_terms_and_task_match_a_direct_computation():
    model = make_mmim()
    out = model(**batch())
    terms = model.losses(out, LABEL)
    assert torch.allclose(terms["task"], (out.pred - LABEL).abs().mean())
    for name, head, h in (
        ("l_ft", model.cpc_t, out.h_t),
        ("l_fv", model.cpc_v, out.h_v),
        ("l_fa", model.cpc_a, out.h_a),
    ):
        g = head.net(out.fused)
        g = g / g.norm(dim=-1, keepdim=True)
        hn = h / h.norm(dim=-1, keepdim=True)
        s = torch.exp(g @ hn.T)  # s(F^i, h_m^j)
        direct = -torch.log(s.diag() / s.sum(dim=1)).mean()
        assert torch.allclose(terms[name], direct, atol=1e-5), name
    scores = model.cpc_scores(out)
    assert set(scores) == {"s_ft", "s_fv", "s_fa"} and (scores["s_ft"] > 0).all()
    assert not hasattr(model, "cpc_t_probe")


def direct_entropy(samples: np.ndarray) -> float:
    cov = np.cov(samples.T, bias=True).reshape(samples.shape[1], -1)
    cov = cov + RIDGE * np.eye(samples.shape[1])
    return float(multivariate_normal(mean=np.zeros(len(cov)), cov=cov).entropy())


def test_mixture_entropy_is_the_weighted_component_bound():
    rng = np.random.default_rng(0)
    pos = rng.normal(size=(7, 3)) * [1.0, 0.5, 2.0]
    neg = rng.normal(size=(5, 3)) + 3.0
    h = mixture_entropy([torch.tensor(pos), torch.tensor(neg)])
    w = np.array([7, 5]) / 12
    direct = sum(
        wc * (-np.log(wc) + direct_entropy(c)) for wc, c in zip(w, (pos, neg), strict=True)
    )
    assert float(h) == pytest.approx(direct, rel=1e-6)
    # A component with no more samples than dimensions has a singular covariance: left out.
    few = torch.tensor(rng.normal(size=(3, 3)))
    only_pos = mixture_entropy([torch.tensor(pos), few])
    assert float(only_pos) == pytest.approx(direct_entropy(pos), rel=1e-6)  # w = 1
    assert mixture_entropy([few, few[:1]]) is None


def test_entropy_memory_keeps_the_last_batches_per_sign():
    memory = EntropyMemory(2)
    label = torch.tensor([1.0, -1.0, 0.0, 2.0])
    steps = torch.arange(4.0)[:, None]
    ys = [torch.full((4, 2), float(i), requires_grad=True) + steps for i in range(3)]
    pos, neg = memory.components("tv", ys[0], label)
    assert pos.shape == (2, 2) and neg.shape == (1, 2)  # label 0 is in neither
    for y in ys:
        memory.push("tv", y, label)
    # Batches 1 and 2 remain, oldest first; batch 0 was dropped; nothing carries a graph.
    kept = memory.batches["tv"]
    assert [float(p[0, 0]) for p, _ in kept] == [1.0, 2.0]
    assert all(not p.requires_grad and not n.requires_grad for p, n in kept)
    current = torch.full((4, 2), 9.0, requires_grad=True)
    pos, neg = memory.components("tv", current, label)
    assert pos[:, 0].tolist() == [1.0, 4.0, 2.0, 5.0, 9.0, 9.0]
    assert neg[:, 0].tolist() == [2.0, 3.0, 9.0]
    assert pos.requires_grad  # the current batch's samples carry the gradient
    assert "ta" not in memory.batches
    none = EntropyMemory(0)
    none.push("tv", ys[0], label)
    assert none.batches == {}
    with pytest.raises(ValueError, match="memory size"):
        EntropyMemory(-1)


def test_main_loss_uses_memory_and_weights():
    model = make_mmim()
    b = train_batch()
    memory = EntropyMemory(3)
    out = model(**inputs(b))
    first = model.losses(out, b["label"], memory)
    # Three positives, two negatives: h_ta (2 dims) has a positive component, h_tv (3) none.
    assert "h_ta" in first and "h_tv" not in first
    model.remember(out, b["label"], memory)
    second = model.losses(out, b["label"], memory)
    assert {"h_tv", "h_ta"} <= set(second)
    pos, neg = memory.components("tv", out.h_v, b["label"])
    assert torch.allclose(second["h_tv"], mixture_entropy([pos, neg]))
    total = model.total_loss(second, alpha=0.3, beta=0.1)
    cpc = second["l_ft"] + second["l_fv"] + second["l_fa"]
    ba = second["lld_tv"] + second["lld_ta"] + second["h_tv"] + second["h_ta"]
    assert torch.allclose(total, second["task"] + 0.3 * cpc - 0.1 * ba)


def test_two_optimisers_touch_disjoint_parameter_sets():
    model = make_mmim().train()
    cfg = TrainConfig.preset("mmim", batch_size=B, mi_lr=1e-2, lr=1e-2, bert_lr=1e-3, mi_memory=2)
    opts = make_optimizers(model, cfg)
    ids = {
        name: {id(p) for g in opt.param_groups for p in g["params"]}
        for name, opt in (("main", opts.main), ("estimator", opts.estimator))
    }
    assert not ids["main"] & ids["estimator"]
    named = dict(model.named_parameters())
    assert ids["main"] | ids["estimator"] == {id(p) for p in named.values()}
    assert ids["estimator"] == {id(p) for n, p in named.items() if n.startswith("mi_")}

    def snapshot():
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    def changed(before):
        return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}

    before = snapshot()
    estimator_step(model, train_batch(), opts, cfg)
    moved = changed(before)
    assert moved and all(n.startswith("mi_") for n in moved)

    before = snapshot()
    memory = EntropyMemory(2)
    terms = main_step(model, train_batch(), opts, cfg, memory)
    moved = changed(before)
    assert not any(n.startswith("mi_") for n in moved)
    assert any(n.startswith("text_encoder.") for n in moved) and "cpc_t.net.0.weight" in moved
    assert {"task", "l_ft", "lld_tv", "total"} <= set(terms) and "tv" in memory.batches
    assert all(p.grad is None for p in model.mi_tv.parameters())

    # One state dict holds both optimisers and the entropy memory, and restores all three.
    opts.memory.push("tv", torch.ones(B, HV), LABEL)
    state = opts.state_dict()
    assert set(state) == {"main", "estimator", "memory"} and state["estimator"]["state"]
    fresh = make_optimizers(model, cfg)
    fresh.load_state_dict(state)
    assert fresh.estimator.state_dict()["state"].keys() == state["estimator"]["state"].keys()
    assert fresh.main.state_dict()["state"].keys() == state["main"]["state"].keys()
    assert [p.tolist() for p, _ in fresh.memory.batches["tv"]] == [[[1.0] * HV] * 3]
    with pytest.raises(ValueError, match="memory of 2 batches"):
        make_optimizers(model, TrainConfig.preset("mmim", mi_memory=3)).load_state_dict(state)


def test_mmim_switches_are_fixed():
    cfg = TrainConfig.preset("mmim")
    assert cfg.model == "mmim" and not cfg.deno1 and not cfg.deno2 and cfg.recovery
    with pytest.raises(ValueError, match="model mmim has no text-guided attention"):
        TrainConfig(variant="mmim", model="mmim")
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="misa")


def test_mmim_trains_through_the_trainer_and_aggregates(dataset, tmp_path):  # noqa: F811
    data = load(dataset)
    runs = []
    for seed in (1, 2):
        # One-unit LSTM states: the six training clips are enough for an entropy estimate.
        cfg = TrainConfig.preset(
            "mmim", batch_size=4, max_epochs=2, patience=2, seed=seed,
            visual_hidden=1, acoustic_hidden=1, mi_memory=2,
        )  # fmt: skip
        out = tmp_path / f"seed{seed}"
        train_run(data, cfg, out)
        hist = pd.read_csv(out / "history.tsv", sep="\t")
        train, valid = hist[hist.split == "train"], hist[hist.split == "valid"]
        assert list(hist.columns[2:13]) == [
            "task", "l_ft", "l_fv", "l_fa", "lld_tv", "lld_ta", "h_tv", "h_ta", "mi_nll",
            "total", "mae",
        ]  # fmt: skip
        assert train[["mi_nll", "h_tv", "lld_ta", "l_ft"]].notna().all().all()
        # The entropy estimate needs the training memory: no h terms on validation.
        assert valid[["h_tv", "h_ta", "mi_nll"]].isna().all().all()
        assert valid[["task", "l_ft", "lld_tv", "total"]].notna().all().all()
        best = json.loads((out / "valid_metrics.json").read_text())
        assert best["variant"] == "mmim"
        info, weights = read_run(out)
        assert info["config"]["model"] == "mmim"
        assert any(k.startswith("mi_tv.") for k in weights)
        runs.append(evaluate_predictions(out / "predictions.tsv", out / "metrics.json", seed=seed))
        pred = pd.read_csv(out / "predictions.tsv", sep="\t")
        assert (pred[["s_ft", "s_fv", "s_fa"]] > 0).all().all()
    agg = aggregate_runs(
        [tmp_path / f"seed{s}" / "metrics.json" for s in (1, 2)],
        tmp_path / "agg.json",
        dataset="t",
        variant="mmim",
    )
    assert agg["seeds"] == [1, 2]
    assert agg["mean"]["mae"] == pytest.approx((runs[0]["mae"] + runs[1]["mae"]) / 2, abs=1e-6)


def test_mmim_resumes_from_its_checkpoint_exactly(dataset, tmp_path, capfd):  # noqa: F811
    """MMIM's two optimisers and its entropy memory go through checkpoint.pt (read with
    torch.load(weights_only=True)): a run stopped after epoch 1 ends as an unbroken one.

    Break checked by hand: TwoOptimizers.load_state_dict skipping the memory makes the
    resumed run's history differ (this test fails)."""
    from test_train import Interrupted, assert_same_weights, interrupt_after_epoch

    data = load(dataset)
    cfg = TrainConfig.preset(
        "mmim", batch_size=4, max_epochs=2, patience=2, seed=1, checkpoint_every_s=0,
        visual_hidden=1, acoustic_hidden=1, mi_memory=2,
    )  # fmt: skip
    train_run(data, cfg, tmp_path / "whole")
    out = tmp_path / "resumed"
    with pytest.MonkeyPatch.context() as m:
        interrupt_after_epoch(m, 1)
        with pytest.raises(Interrupted):
            train_run(data, cfg, out)
    capfd.readouterr()
    train_run(data, cfg, out)
    assert "resuming after epoch 1" in capfd.readouterr().err
    for name in ("history.tsv", "predictions.tsv"):
        assert (out / name).read_text() == (tmp_path / "whole" / name).read_text(), name
    assert_same_weights(tmp_path / "whole", out)
