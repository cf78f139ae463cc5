import math

import pytest
import torch
from transformers import BertConfig, BertModel

from thne.model.thne import THNE, VARIANTS, info_nce

B, L, TV, TA, DV, DA = 6, 12, 9, 14, 7, 5


def tiny_bert():
    cfg = BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return BertModel(cfg), 32


def make(variant="thne", seed=0):
    torch.manual_seed(seed)
    bert, d_t = tiny_bert()
    return THNE(
        bert,
        d_t,
        DV,
        DA,
        visual_hidden=8,
        acoustic_hidden=6,
        fusion_dim=16,
        variant=VARIANTS[variant],
    ).eval()


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 120, (B, L), generator=g),
        "attention_mask": torch.ones(B, L, dtype=torch.long),
        "visual": torch.randn(B, TV, DV, generator=g),
        "visual_len": torch.tensor([9, 3, 5, 9, 1, 7]),
        "acoustic": torch.randn(B, TA, DA, generator=g),
        "acoustic_len": torch.tensor([14, 2, 10, 6, 14, 1]),
    }


def test_shapes_and_losses():
    model = make()
    out = model(**batch())
    assert out.pred.shape == (B,) and out.fused.shape == (B, 16)
    assert out.h_vt.shape == (B, 8) and out.h_at.shape == (B, 6)
    assert out.attn_v.shape == (B, TV)
    assert torch.allclose(out.attn_v.sum(-1), torch.ones(B))
    terms = model.losses(out, torch.zeros(B))
    assert set(terms) == {"task", "l_tv", "l_ta", "l_fv", "l_fa"}
    loss = model.total_loss(terms, alpha=0.3, beta=0.1)
    expected = (
        terms["task"]
        + 0.3 * (terms["l_ta"] + terms["l_tv"])
        + 0.1 * (terms["l_fa"] + terms["l_fv"])
    )
    assert torch.allclose(loss, expected)
    # With an untrained critic, the NCE terms sit near log B.
    assert abs(float(terms["l_tv"].detach()) - math.log(B)) < 1.0


def test_attention_ignores_padded_steps():
    model = make()
    b = batch()
    ref = model(**b)
    b2 = {k: v.clone() for k, v in b.items()}
    for i, n in enumerate(b["visual_len"].tolist()):
        b2["visual"][i, n:] = 1e3
    for i, n in enumerate(b["acoustic_len"].tolist()):
        b2["acoustic"][i, n:] = -1e3
    out = model(**b2)
    assert torch.allclose(ref.pred, out.pred, atol=1e-5)
    assert torch.allclose(ref.h_vt, out.h_vt, atol=1e-5)
    assert (out.attn_v[1, 3:] == 0).all() and (out.attn_a[5, 1:] == 0).all()


def test_variants_remove_their_component():
    b = batch()
    no1 = make("no_deno1")
    out = no1(**b)
    assert out.attn_v is None and not hasattr(no1, "attend_v")
    assert torch.equal(out.h_vt, out.h_v)
    assert set(make("no_deno2").losses(make("no_deno2")(**b), torch.zeros(B))) == {
        "task",
        "l_fv",
        "l_fa",
    }
    assert set(make("no_re").losses(make("no_re")(**b), torch.zeros(B))) == {"task", "l_tv", "l_ta"}
    text = make("text_only")
    assert not hasattr(text, "visual_encoder")
    t_out = text(**b)
    assert t_out.h_v is None and set(text.losses(t_out, torch.zeros(B))) == {"task"}
    res, plain = make("residual"), make("thne")
    r_out, p_out = res(**b), plain(**b)  # same seed, same weights
    assert torch.allclose(r_out.h_vt, p_out.h_vt + p_out.h_v, atol=1e-6)  # Eq. 10


def grads(model, loss):
    """d loss / d parameter for every parameter (zeros where the loss does not reach)."""
    params = dict(model.named_parameters())
    got = torch.autograd.grad(loss, list(params.values()), retain_graph=True, allow_unused=True)
    return {
        n: torch.zeros_like(p) if g is None else g
        for (n, p), g in zip(params.items(), got, strict=True)
    }


def assert_same_grads(model, loss, direct):
    """``loss`` and its direct formula train every parameter alike, and reach the encoders."""
    a, b = grads(model, loss), grads(model, direct)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=1e-4, atol=1e-7), name
    for prefix in ("text_encoder.", "visual_encoder.", "acoustic_encoder."):
        assert any(g.abs().sum() > 0 for n, g in b.items() if n.startswith(prefix)), prefix


def test_nce_matches_eq5_directly():
    """Break caught: l_tv computed on detached h_t and h_vt (the loss value is unchanged, but
    DeNo2 no longer trains the text encoder, the visual LSTM and the attention)."""
    model = make()
    out = model(**batch())
    crit = model.critic_tv
    # Eq. 5 with T = exp(critic): -mean_i log( T(h_vt^i, h_t^i) / sum_j T(h_vt^j, h_t^i) ).
    direct = 0.0
    for i in range(B):
        t = torch.stack(
            [crit.net(torch.cat([out.h_t[i], out.h_vt[j]])).exp().squeeze() for j in range(B)]
        )
        direct += -torch.log(t[i] / t.sum())
    l_tv = model.losses(out, torch.zeros(B))["l_tv"]
    assert float(l_tv.detach()) == pytest.approx(float(direct.detach() / B), rel=1e-5)
    g = grads(model, direct / B)
    assert all(g[n].abs().sum() == 0 for n in g if n.startswith("acoustic_encoder."))
    # The visual side of Eq. 5 reaches the visual LSTM and the text encoder: check both
    # through the direct formula, whose graph cannot have been cut.
    for name, value in grads(model, l_tv).items():
        assert torch.allclose(value, g[name], rtol=1e-4, atol=1e-7), name
    assert g["visual_encoder.lstm.weight_ih_l0"].abs().sum() > 0
    assert g["attend_v.w_m"].abs().sum() > 0
    assert any(v.abs().sum() > 0 for n, v in g.items() if n.startswith("text_encoder."))


def test_cpc_matches_eq7_directly():
    """Break caught: l_fa computed on detached F and h_a (same value, but Re no longer trains
    the fusion network or the encoders)."""
    model = make()
    out = model(**batch())
    g = model.cpc_a.net(out.fused)
    g = g / g.norm(dim=-1, keepdim=True)
    h = out.h_a / out.h_a.norm(dim=-1, keepdim=True)
    s = torch.exp(g @ h.T)  # Eq. 6: s(F^i, h_a^j)
    direct = -torch.log(s.diagonal() / s.sum(dim=1)).mean()  # Eq. 7
    l_fa = model.losses(out, torch.zeros(B))["l_fa"]
    assert float(l_fa.detach()) == pytest.approx(float(direct.detach()), rel=1e-5)
    assert_same_grads(model, l_fa, direct)
    assert grads(model, l_fa)["fusion.1.weight"].abs().sum() > 0
    scores = model.cpc_scores(out)
    assert torch.allclose(scores["s_fa"], s.diagonal(), atol=1e-6)
    assert set(scores) == {"s_ft", "s_fv", "s_fa"}


MODULES = (
    "text_encoder",
    "visual_encoder",
    "acoustic_encoder",
    "attend_v",
    "attend_a",
    "critic_tv",
    "critic_ta",
    "fusion",
    "cpc_v",
    "cpc_a",
    "regressor",
    "cpc_t_probe",
)
ENCODERS = {"text_encoder", "visual_encoder", "acoustic_encoder", "attend_v", "attend_a"}


def test_each_loss_term_trains_what_eq9_says():
    """Eq. 9 through the graph: l_tv, l_ta train their critic, the text encoder and one
    modality's LSTM and attention; l_fv, l_fa train their CPC head, the fusion network and,
    through F, every encoder; none trains the regressor or the probe.

    Breaks caught: a detached input to l_tv, l_ta (DeNo2) or l_fv, l_fa (Re)."""
    model = make()
    out = model(**batch())
    terms = model.losses(out, torch.linspace(-2, 2, B))
    reached = {}
    for term, loss in terms.items():
        g = grads(model, loss)
        reached[term] = {
            m for m in MODULES if any(g[n].abs().sum() > 0 for n in g if n.startswith(m + "."))
        }
    assert reached == {
        "task": ENCODERS | {"fusion", "regressor"},
        "l_tv": {"text_encoder", "visual_encoder", "attend_v", "critic_tv"},
        "l_ta": {"text_encoder", "acoustic_encoder", "attend_a", "critic_ta"},
        "l_fv": ENCODERS | {"fusion", "cpc_v"},
        "l_fa": ENCODERS | {"fusion", "cpc_a"},
    }
    # The weighted sum of Eq. 9 is what the optimiser sees.
    total = grads(model, model.total_loss(terms, alpha=0.3, beta=0.1))
    each = {t: grads(model, loss) for t, loss in terms.items()}
    weight = {"task": 1.0, "l_tv": 0.3, "l_ta": 0.3, "l_fv": 0.1, "l_fa": 0.1}
    for name, value in total.items():
        expected = sum(weight[t] * each[t][name] for t in terms)
        assert torch.allclose(value, expected, rtol=1e-4, atol=1e-6), name


def test_attention_follows_the_text():
    """Eq. 2's query is h_t W_m: other text, same visual and acoustic input, other weights.

    Break caught: an attention query that does not depend on h_t."""
    model = make()
    b = batch()
    ref = model(**b)
    other = {**b, "input_ids": batch(seed=1)["input_ids"]}
    out = model(**other)
    assert not torch.allclose(out.h_t, ref.h_t)
    assert torch.equal(out.h_v, ref.h_v) and torch.equal(out.h_a, ref.h_a)  # same sequences
    for name in ("attn_v", "attn_a"):
        new, old = getattr(out, name), getattr(ref, name)
        # Clips with a single valid step have nothing to choose between.
        many = (b["visual_len"] if name == "attn_v" else b["acoustic_len"]) > 1
        assert (new[many] - old[many]).abs().amax(dim=-1).min() > 1e-4, name
        assert torch.allclose(new.sum(-1), torch.ones(B))
    assert not torch.allclose(out.h_vt, ref.h_vt)


def test_two_learning_rates_and_clipping_by_norm():
    """The text encoder learns at bert_lr, everything else at lr; gradients are clipped by
    their total norm, the model's and the probe's each on its own.

    Breaks caught: one learning rate for all, clipping by value, no clipping."""
    from thne.train.config import TrainConfig
    from thne.train.thne_optimiser import THNEOptimiser

    model = make().train()
    cfg = TrainConfig(lr=2e-3, bert_lr=3e-5, grad_clip=0.01)
    opt = THNEOptimiser(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [{names[id(p)] for p in g["params"]} for g in opt.adam.param_groups]
    assert [g["lr"] for g in opt.adam.param_groups] == [3e-5, 2e-3]
    assert groups[0] == {n for n in names.values() if n.startswith("text_encoder.")}
    assert groups[1] == {n for n in names.values() if not n.startswith("text_encoder.")}

    b = {**batch(), "label": torch.linspace(-2, 2, B)}
    torch.manual_seed(0)
    opt.step("train", b, {})
    # The step leaves the clipped gradients in place after the update.
    params = dict(model.named_parameters())
    probe = [p.grad for n, p in params.items() if n.startswith("cpc_t_probe.")]
    rest = [
        p.grad for n, p in params.items() if not n.startswith("cpc_t_probe.") and p.grad is not None
    ]
    for part in (rest, probe):
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in part]))
        # Several times 0.01 unclipped (below), exactly 0.01 after: clipped by total norm.
        assert float(norm) == pytest.approx(0.01, rel=1e-3)

    # Unclipped, the same step has a larger gradient, and clipping by norm keeps its direction.
    free = make().train()
    loose = TrainConfig(lr=2e-3, bert_lr=3e-5, grad_clip=1e9)
    torch.manual_seed(0)
    THNEOptimiser(free, loose).step("train", b, {})
    unclipped = [
        p.grad
        for n, p in free.named_parameters()
        if not n.startswith("cpc_t_probe.") and p.grad is not None
    ]
    scale = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in unclipped]))
    assert float(scale) > 0.1
    free_probe = [p.grad for n, p in free.named_parameters() if n.startswith("cpc_t_probe.")]
    assert sum(float(g.norm()) ** 2 for g in free_probe) ** 0.5 > 0.05
    for clipped, raw in zip(rest, unclipped, strict=True):
        assert torch.allclose(clipped, raw * (0.01 / scale), rtol=1e-3, atol=1e-9)


def test_info_nce_prefers_matching_pairs():
    good = torch.eye(4) * 10
    assert float(info_nce(good)) < 1e-3
    assert float(info_nce(torch.zeros(4, 4))) == pytest.approx(math.log(4))


def test_probe_cannot_change_the_model():
    """Break caught: a model that never updates (only the probe's parameters stepped)."""
    from thne.train.config import TrainConfig
    from thne.train.thne_optimiser import THNEOptimiser

    b = {**batch(), "label": torch.linspace(-2, 2, B)}
    # Two models equal but for the probe's weights; a tiny clip norm makes clipping bite.
    cfg = TrainConfig(grad_clip=1e-3)
    updated = []
    for probe_seed in (1, 2):
        model = make().train()
        torch.manual_seed(probe_seed)
        for p in model.cpc_t_probe.parameters():
            torch.nn.init.normal_(p, std=3.0)
        torch.manual_seed(0)  # same dropout masks in both runs
        THNEOptimiser(model, cfg).step("train", b, {})
        updated.append({n: p.detach().clone() for n, p in model.named_parameters()})
    for name, value in updated[0].items():
        if name.startswith("cpc_t_probe."):
            assert not torch.equal(value, updated[1][name])
        else:
            assert torch.equal(value, updated[1][name]), name
    # ... and the step did change the model: equality above is not that of a frozen model.
    before = dict(make().named_parameters())
    for prefix in ("text_encoder.", "visual_encoder.", "attend_v.", "critic_tv.", "fusion."):
        assert any(
            not torch.equal(value, before[name])
            for name, value in updated[0].items()
            if name.startswith(prefix)
        ), prefix


def test_sequence_encoders_and_predictions_stay_float32_under_autocast():
    model = make()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(**batch())
    # The LSTMs and the regressor run in float32; the rest may be bf16.
    assert out.h_v.dtype == torch.float32 and out.h_a.dtype == torch.float32
    assert out.pred.dtype == torch.float32
    ref = model(**batch())
    assert torch.allclose(out.h_v, ref.h_v, atol=1e-6)


def test_inconsistent_switches_are_refused():
    from thne.model.thne import Variant

    with pytest.raises(ValueError, match="needs deno1"):
        Variant(deno1=False, residual=True)
    with pytest.raises(ValueError, match="text branch alone"):
        Variant(multimodal=False)
