"""MMIM: each loss term against a direct computation of MMIM's public code's formula, the
entropy memory, the two optimisers, and a short run through the trainer whose metrics
aggregate."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_model import DA, DV, B, batch, tiny_bert
from test_train import dataset, load  # noqa: F401 - the fixture is used by name
from test_workflow import demo_subset, write_config

from conftest import run_snakemake
from thne.evaluate.aggregate import aggregate_runs, evaluate_predictions
from thne.model.build import build_model
from thne.model.mmim import MMIM, EntropyMemory, entropy_estimate
from thne.runs import read_run
from thne.train.config import TrainConfig
from thne.train.data import load_dataset
from thne.train.loop import evaluate, make_optimiser, seed_everything, train_epoch, train_run
from thne.train.mmim_optimiser import MMIMOptimiser

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


def test_log_likelihood_is_the_public_codes():
    """E log q(y|x) is MMIM's public code's lld (MMILB.forward), written out here: the squared
    error over the variance, without the log-variance term.

    Break caught: the full Gaussian log-density (log-variance and constant terms kept), thne's
    former reading, under which the predictions collapse to the training mean."""
    model = make_mmim()
    out = model(**batch())
    terms = model.losses(out, LABEL)
    for pair, est, y in (("tv", model.mi_tv, out.h_v), ("ta", model.mi_ta, out.h_a)):
        mu, logvar = est.mu(out.h_t), est.logvar(out.h_t)
        positive = -((mu - y) ** 2) / 2.0 / torch.exp(logvar)
        lld = torch.mean(torch.sum(positive, -1))
        assert torch.allclose(terms[f"lld_{pair}"], lld, atol=1e-6), pair
        assert torch.allclose(est.variance(out.h_t), torch.exp(logvar))
    # Stage one's loss is the negative of the two, on detached pairs.
    nll = model.estimator_loss(out)
    assert torch.allclose(nll, -(terms["lld_tv"] + terms["lld_ta"]), atol=1e-6)
    nll.backward()
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert all(p.grad is None for p in model.visual_encoder.parameters())
    assert model.mi_tv.mu[0].weight.grad is not None


def test_cpc_terms_and_task_are_the_public_codes():
    """Each CPC term is MMIM's public code's CPC.forward, written out: for each h_m^i, its own
    F^i among the batch's predictions.

    Break caught: the InfoNCE taken over the h_m for each F (t-HNE's Eq. 7 direction)."""
    model = make_mmim()
    out = model(**batch())
    terms = model.losses(out, LABEL)
    assert torch.allclose(terms["task"], (out.pred - LABEL).abs().mean())
    for name, head, h in (
        ("l_ft", model.cpc_t, out.h_t),
        ("l_fv", model.cpc_v, out.h_v),
        ("l_fa", model.cpc_a, out.h_a),
    ):
        x_pred = head.net(out.fused)
        x_pred = x_pred / x_pred.norm(dim=1, keepdim=True)
        x = h / h.norm(dim=1, keepdim=True)
        pos = torch.sum(x * x_pred, dim=-1)
        neg = torch.logsumexp(torch.matmul(x, x_pred.t()), dim=-1)
        nce = -(pos - neg).mean()
        assert torch.allclose(terms[name], nce, atol=1e-5), name
    scores = model.cpc_scores(out)
    assert set(scores) == {"s_ft", "s_fv", "s_fa"} and (scores["s_ft"] > 0).all()
    assert not hasattr(model, "cpc_t_probe")


def public_entropy(prj, y, labels, history):
    """MMIM's public code's H (MMILB.forward with a memory), written out."""
    y = prj(y)
    pos_y, neg_y = y[labels > 0], y[labels < 0]
    pos_all = torch.cat([p for p, _ in history] + [pos_y], dim=0)
    neg_all = torch.cat([n for _, n in history] + [neg_y], dim=0)
    mu_pos, mu_neg = pos_all.mean(dim=0), neg_all.mean(dim=0)
    sigma_pos = torch.mean(
        torch.bmm((pos_all - mu_pos).unsqueeze(-1), (pos_all - mu_pos).unsqueeze(1)), dim=0
    )
    sigma_neg = torch.mean(
        torch.bmm((neg_all - mu_neg).unsqueeze(-1), (neg_all - mu_neg).unsqueeze(1)), dim=0
    )
    return 0.25 * (torch.logdet(sigma_pos) + torch.logdet(sigma_neg))


def test_entropy_is_the_public_codes_on_the_projection():
    """h_tv, h_ta are MMIM's public code's H: a quarter of the two components' log det, on the
    fixed tanh projection of Y, over the current batch and the remembered one.

    Break caught: the entropy taken on Y itself (its first coordinates) instead of on the
    projection."""
    torch.manual_seed(0)
    bert, d_t = tiny_bert()
    model = MMIM(bert, d_t, DV, DA, visual_hidden=8, acoustic_hidden=4, fusion_dim=16).eval()
    assert model.mi_tv.project[0].out_features == 2 and model.mi_ta.project[0].out_features == 1
    assert not any(p.requires_grad for p in model.mi_tv.project.parameters())
    n = 24
    g = torch.Generator().manual_seed(1)
    label = torch.randn(n, generator=g)
    label[:2] = 0.0  # in neither component
    rows = {
        "input_ids": torch.randint(0, 30, (n, 5), generator=g),
        "attention_mask": torch.ones(n, 5, dtype=torch.long),
        "visual": torch.randn(n, 7, DV, generator=g),
        "visual_len": torch.full((n,), 7),
        "acoustic": torch.randn(n, 6, DA, generator=g),
        "acoustic_len": torch.full((n,), 6),
    }
    first = model(**{k: v[:12] for k, v in rows.items()})
    second = model(**{k: v[12:] for k, v in rows.items()})
    memory = EntropyMemory(1)
    assert "h_tv" not in model.losses(first, label[:12], memory)  # memory not yet full
    model.remember(first, label[:12], memory)
    terms = model.losses(second, label[12:], memory)
    for pair, est, y0, y in (
        ("tv", model.mi_tv, first.h_v, second.h_v),
        ("ta", model.mi_ta, first.h_a, second.h_a),
    ):
        p0 = est.project(y0.detach())
        history = [(p0[label[:12] > 0], p0[label[:12] < 0])]
        direct = public_entropy(est.project, y, label[12:], history)
        assert torch.allclose(terms[f"h_{pair}"], direct, atol=1e-5), pair
        # Only the current batch carries a gradient to the encoders.
        grad = torch.autograd.grad(terms[f"h_{pair}"], y, retain_graph=True)[0]
        assert grad.abs().sum() > 0


def test_entropy_needs_more_samples_than_dimensions():
    rng = np.random.default_rng(0)
    pos = torch.tensor(rng.normal(size=(7, 3)))
    neg = torch.tensor(rng.normal(size=(5, 3)) + 3.0)
    h = entropy_estimate(pos, neg)
    direct = 0.25 * (np.linalg.slogdet(np.cov(pos.T, bias=True))[1])
    direct += 0.25 * (np.linalg.slogdet(np.cov(neg.T, bias=True))[1])
    assert float(h) == pytest.approx(direct, rel=1e-6)
    assert entropy_estimate(pos, neg[:3]) is None  # 3 samples in 3 dimensions: singular
    same = torch.ones(6, 3, dtype=torch.float64)
    assert entropy_estimate(pos, same) is None  # singular all the same: no -inf term


def test_entropy_memory_keeps_the_last_batches_per_sign():
    memory = EntropyMemory(2)
    label = torch.tensor([1.0, -1.0, 0.0, 2.0])
    steps = torch.arange(4.0)[:, None]
    ys = [torch.full((4, 2), float(i), requires_grad=True) + steps for i in range(3)]
    pos, neg = memory.components("tv", ys[0], label)
    assert pos.shape == (2, 2) and neg.shape == (1, 2)  # label 0 is in neither
    assert not memory.full("tv")
    for y in ys:
        memory.push("tv", y, label)
    assert memory.full("tv")
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
    with pytest.raises(ValueError, match="memory size"):
        EntropyMemory(0)


def test_main_loss_uses_memory_and_weights():
    model = make_mmim()
    b = train_batch()
    memory = EntropyMemory(1)
    out = model(**inputs(b))
    first = model.losses(out, b["label"], memory)
    assert "h_ta" not in first and "h_tv" not in first  # the memory is not full yet
    model.remember(out, b["label"], memory)
    # Three positives, two negatives twice: enough for the one-dimensional projections.
    second = model.losses(out, b["label"], memory)
    assert {"h_tv", "h_ta"} <= set(second)
    project = model.mi_tv.project
    pos, neg = memory.components("tv", project(out.h_v), b["label"])
    assert torch.allclose(second["h_tv"], entropy_estimate(pos, neg))
    total = model.total_loss(second, alpha=0.3, beta=0.1)
    cpc = second["l_ft"] + second["l_fv"] + second["l_fa"]
    ba = second["lld_tv"] + second["lld_ta"] + second["h_tv"] + second["h_ta"]
    assert torch.allclose(total, second["task"] + 0.3 * cpc - 0.1 * ba)


def test_two_optimisers_touch_disjoint_parameter_sets():
    model = make_mmim().train()
    cfg = TrainConfig.preset("mmim", batch_size=B, mi_lr=1e-2, lr=1e-2, bert_lr=1e-3, mi_memory=2)
    opts = MMIMOptimiser(model, cfg)
    ids = {
        name: {id(p) for g in opt.param_groups for p in g["params"]}
        for name, opt in (("main", opts.main), ("estimator", opts.estimator))
    }
    assert not ids["main"] & ids["estimator"]
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert ids["main"] | ids["estimator"] == {id(p) for p in named.values()}
    assert ids["estimator"] == {id(p) for n, p in named.items() if n.startswith("mi_")}
    assert not any(".project." in n for n in named)  # the projection is never trained

    def snapshot():
        return {n: p.detach().clone() for n, p in model.named_parameters()}

    def changed(before):
        return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}

    before = snapshot()
    opts.step("estimator", train_batch(), {})
    moved = changed(before)
    assert moved and all(n.startswith("mi_") for n in moved)

    before = snapshot()
    carry = {}  # the stage's entropy memory
    terms = opts.step("main", train_batch(), carry)
    moved = changed(before)
    assert not any(n.startswith("mi_") for n in moved)
    assert any(n.startswith("text_encoder.") for n in moved) and "cpc_t.net.0.weight" in moved
    assert {"task", "l_ft", "lld_tv", "total"} <= set(terms) and "tv" in carry
    assert all(p.grad is None for p in model.mi_tv.parameters())

    # One state dict holds both optimisers and restores both; the memory, emptied at each
    # epoch, is not in it.
    state = opts.state_dict()
    assert set(state) == {"main", "estimator"} and state["estimator"]["state"]
    fresh = MMIMOptimiser(model, cfg)
    fresh.load_state_dict(state)
    assert fresh.estimator.state_dict()["state"].keys() == state["estimator"]["state"].keys()
    assert fresh.main.state_dict()["state"].keys() == state["main"]["state"].keys()


def test_mmim_switches_are_fixed():
    cfg = TrainConfig.preset("mmim")
    assert cfg.model == "mmim" and not cfg.deno1 and not cfg.deno2 and cfg.recovery
    with pytest.raises(ValueError, match="model mmim has no text-guided attention"):
        TrainConfig(variant="mmim", model="mmim")
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="misa")


@pytest.mark.slow
def test_mmim_trains_through_the_trainer_and_aggregates(dataset, tmp_path):  # noqa: F811
    data = load(dataset)
    runs = []
    for seed in (1, 2):
        # One-dimensional projections: the second batch of four (with the first remembered)
        # has enough samples of each sign for an entropy estimate.
        cfg = TrainConfig.preset(
            "mmim", batch_size=4, max_epochs=2, patience=2, seed=seed,
            visual_hidden=4, acoustic_hidden=4, mi_memory=1,
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


@pytest.mark.slow
def test_mmim_resumes_from_its_checkpoint_exactly(dataset, tmp_path, capfd):  # noqa: F811
    """MMIM's two optimisers go through checkpoint.pt (read with
    torch.load(weights_only=True)); its entropy memory is emptied each epoch, so a run stopped
    after epoch 1 holds none. The resumed run ends as an unbroken one."""
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


# The share of the test labels' spread that MMIM's test predictions must reach. Measured on
# this fixture: 0.43 and 0.55 for the two seeds; with log q's log-variance term put back
# (thne's former reading, which collapsed) 0.021 and 0.034, and 0.006 to 0.008 in the former
# code's full-demo runs. 0.1 leaves room for a seed that fits less, far above a collapse.
SPREAD_SHARE = 0.1
DEMO_SEEDS = (1, 2)


@pytest.fixture(scope="module")
def demo_mmim(tmp_path_factory):
    """MMIM trained on a demo subset: 36 training clips from all nine training videos, the 12
    test clips of three others; two seeds, ten epochs. The epoch is picked on the training
    clips: a handful of validation clips would pick one by chance, and this fixture asks
    whether MMIM learns at all. Returns the test labels, the train-mean predictor's MAE and
    each seed's test predictions."""
    root = tmp_path_factory.mktemp("demo_mmim")
    raw = demo_subset(root / "raw", {"train": 36, "valid": 3, "test": 12})
    cfg_path = write_config(root / "cfg.yaml", raw)
    features = [f"features/demo/{n}" for n in ("text.h5", "audio.h5", "visual.h5")]
    stats = [f"features/demo/{n}.stats.json" for n in ("audio", "visual")]
    run_snakemake(root, "--configfile", str(cfg_path), "--cores", "2", *features, *stats)
    data = load_dataset(
        root / "data/demo/manifest.tsv",
        *(root / f for f in features),
        visual_stats=root / stats[1],
        audio_stats=root / stats[0],
    )
    data.splits["valid"] = data.splits["train"]
    train_labels = data.splits["train"].label.numpy()
    preds = {}
    for seed in DEMO_SEEDS:
        cfg = TrainConfig.preset(
            "mmim", batch_size=8, max_epochs=10, patience=10, seed=seed, alpha=0.1,
            beta=0.05, mi_memory=1, checkpoint_every_s=0,
        )  # fmt: skip
        train_run(data, cfg, root / f"seed{seed}")
        preds[seed] = pd.read_csv(root / f"seed{seed}" / "predictions.tsv", sep="\t")
    labels = preds[DEMO_SEEDS[0]]["label"].to_numpy()
    mean_mae = float(np.abs(labels - train_labels.mean()).mean())
    return labels, mean_mae, preds


@pytest.mark.slow
def test_mmim_learns_on_the_demo(demo_mmim):
    """Every seed beats the train-mean predictor on the test clips, with predictions that
    spread at least SPREAD_SHARE of the labels' standard deviation.

    Break caught: log q(y|x) with the log-variance term (thne's former reading): the
    predictions barely move (spread share 0.021 for seed 1), though their MAE still edges
    under the train mean's here (1.32 against 1.43: the test labels' median is not the
    train mean)."""
    labels, mean_mae, preds = demo_mmim
    for seed, pred in preds.items():
        mae = float(np.abs(pred["prediction"] - pred["label"]).mean())
        share = float(pred["prediction"].std() / labels.std())
        assert mae < mean_mae, (seed, mae, mean_mae)
        assert share >= SPREAD_SHARE, (seed, share)


@pytest.mark.slow
def test_mmim_leaves_the_constant_in_its_first_epochs(dataset):  # noqa: F811
    """Three epochs of two-clip batches (nine steps) on the twelve-clip set, the demo's loss
    weights: the predictions on all clips spread at least a fifth of the labels' and follow
    them (Corr > 0.5). On small sets the epoch kept on validation MAE is often an early one,
    so a model that is still a constant then is reported as one (thne's issue 27: demo seeds
    3, 8, 9 and 10 kept epoch 1 or 2, test spread 0.004-0.017 of the labels').

    Breaks caught: MMIM with t-HNE's ReLU fusion and regressor at PyTorch's default
    initialisation (thne's former model): seed 1's spread is 0.036 of the labels' after three
    epochs, though its Corr is already 0.62; the same with MMIM's Xavier-normal weights but
    t-HNE's ReLU fusion and regressor: 0.034 (Corr 0.86)."""
    dev = torch.device("cpu")
    for seed in (1, 2, 3):
        data = load(dataset)
        cfg = TrainConfig.preset(
            "mmim", batch_size=2, alpha=0.1, beta=0.05, seed=seed, checkpoint_every_s=0
        )
        seed_everything(seed)
        model = build_model(cfg, len(data.visual_names), len(data.acoustic_names))
        opt = make_optimiser(model, cfg)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(3):
            train_epoch(model, data.splits["train"], opt, cfg, gen, dev)
        pred = pd.concat([evaluate(model, split, cfg, dev)[1] for split in data.splits.values()])
        share = float(pred["prediction"].std() / pred["label"].std())
        corr = float(np.corrcoef(pred["prediction"], pred["label"])[0, 1])
        assert share >= 0.2 and corr > 0.5, (seed, share, corr)


# Six training clips in batches of two: three steps per stage, six per epoch. Hidden width 1
# (a one-dimensional projection) and a memory of two batches: the third batch of stage two is
# the only one whose memory is full, and its entropy terms need both remembered batches.
MID_EPOCH = dict(
    batch_size=2, max_epochs=2, patience=2, seed=4, visual_hidden=1, acoustic_hidden=1,
    mi_memory=2, checkpoint_every_s=3600,
)  # fmt: skip


@pytest.fixture(scope="module")
def unbroken_mmim(tmp_path_factory):
    """test_train's dataset, and an MMIM run on it that nothing stopped."""
    from test_train import make_dataset

    root = tmp_path_factory.mktemp("mmim_mid_epoch")
    data_dir = make_dataset(root)
    train_run(load(data_dir), TrainConfig.preset("mmim", **MID_EPOCH), root / "whole")
    return data_dir, root / "whole"


@pytest.mark.parametrize(
    "stop_at, next_start, remembered, where",
    [
        # After stage one's last batch: stage two has not started.
        (3, 6, 0, "in epoch 1, stage main, at clip 0 of 6"),
        # After stage two's second batch: its memory is full.
        (5, 10, 2, "in epoch 1, stage main, at clip 4 of 6"),
        (10, 8, 1, "in epoch 2, stage main, at clip 2 of 6"),
    ],
)
def test_mmim_resumes_mid_epoch_exactly(
    unbroken_mmim, tmp_path, monkeypatch, capfd, stop_at, next_start, remembered, where
):
    """A SIGTERM during one of MMIM's steps, in either stage, writes a checkpoint after that
    batch, with the entropy memory stage two has gathered; started again, the run ends as an
    unbroken one (history, predictions, bit-identical weights).

    Breaks caught (checked by hand): the memory left out of the checkpoint (the resumed third
    batch of stage two then has no entropy terms: history.tsv differs); MMIM's epoch not
    pausable inside (its former two-stage loop: no checkpoint until the epoch's end)."""
    import os
    import signal

    from test_checkpoint import OUTPUTS
    from test_train import assert_same_weights, checkpoint_record

    from thne.train.checkpoint import CHECKPOINT, TrainingStopped
    from thne.train.mmim_optimiser import MMIMOptimiser

    data_dir, whole = unbroken_mmim
    train = pd.read_csv(whole / "history.tsv", sep="\t").query("split == 'train'")
    assert train[["h_tv", "h_ta"]].notna().all().all(), "the memory is needed in every epoch"

    real_step, calls = MMIMOptimiser.step, []

    def step(*args, **kwargs):
        calls.append(1)
        if len(calls) == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_step(*args, **kwargs)

    cfg = TrainConfig.preset("mmim", **MID_EPOCH)
    out = tmp_path / "stopped"
    monkeypatch.setattr(MMIMOptimiser, "step", step)
    with pytest.raises(TrainingStopped):
        train_run(load(data_dir), cfg, out)
    assert len(calls) == stop_at, "stopped right after the batch the signal came in"
    record = checkpoint_record(out / CHECKPOINT)
    assert record["epoch"] == (stop_at - 1) // 6 and record["next_start"] == next_start
    carry = torch.load(out / CHECKPOINT, weights_only=True)["carry"]
    assert len(carry.get("tv", [])) == remembered and len(carry.get("ta", [])) == remembered

    monkeypatch.setattr(MMIMOptimiser, "step", real_step)
    capfd.readouterr()
    train_run(load(data_dir), cfg, out)
    assert f"resuming {where} from" in capfd.readouterr().err
    for name in OUTPUTS:
        assert (out / name).read_text() == (whole / name).read_text(), name
    assert_same_weights(whole, out)
    assert not (out / CHECKPOINT).exists()
