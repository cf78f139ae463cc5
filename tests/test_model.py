import math

import pytest
import torch
from transformers import BertConfig, BertModel

from thne.model.thne import THNE, VARIANTS, info_nce, total_loss

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
    loss = total_loss(terms, alpha=0.3, beta=0.1)
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


def test_nce_matches_eq5_directly():
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
    assert float(model.losses(out, torch.zeros(B))["l_tv"].detach()) == pytest.approx(
        float(direct.detach() / B), rel=1e-5
    )


def test_cpc_matches_eq7_directly():
    model = make()
    out = model(**batch())
    g = model.cpc_a.net(out.fused)
    g = g / g.norm(dim=-1, keepdim=True)
    h = out.h_a / out.h_a.norm(dim=-1, keepdim=True)
    s = torch.exp(g @ h.T)  # Eq. 6: s(F^i, h_a^j)
    direct = -torch.log(s.diagonal() / s.sum(dim=1)).mean()  # Eq. 7
    assert float(model.losses(out, torch.zeros(B))["l_fa"].detach()) == pytest.approx(
        float(direct.detach()), rel=1e-5
    )
    scores = model.cpc_scores(out)
    assert torch.allclose(scores["s_fa"], s.diagonal(), atol=1e-6)
    assert set(scores) == {"s_ft", "s_fv", "s_fa"}


def test_info_nce_prefers_matching_pairs():
    good = torch.eye(4) * 10
    assert float(info_nce(good)) < 1e-3
    assert float(info_nce(torch.zeros(4, 4))) == pytest.approx(math.log(4))


def test_probe_cannot_change_the_model():
    from thne.train.config import TrainConfig
    from thne.train.loop import make_optimizer, train_step

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
        train_step(model, b, make_optimizer(model, cfg), cfg)
        updated.append({n: p.detach().clone() for n, p in model.named_parameters()})
    for name, value in updated[0].items():
        if name.startswith("cpc_t_probe."):
            assert not torch.equal(value, updated[1][name])
        else:
            assert torch.equal(value, updated[1][name]), name


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
