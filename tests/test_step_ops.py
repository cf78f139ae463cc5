"""t-HNE's update step with fewer operations (issue 32) computes what the step computed before:
each loss term, every clipped gradient and every updated parameter, step after step, against
the former formulas recomputed here from the model's own layers (packed LSTMs, einsum
attention, cross-entropy InfoNCE, Eq. 9 as mul-then-add, one clip_grad_norm_ per group) and
transformers' BertModel, which thne's BERT computes bit for bit, as it did before its layers
took one row per token (tests/test_bert.py)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import BertConfig as HFBertConfig
from transformers import BertModel

from thne.model.thne import THNE, VARIANTS
from thne.text.bert import Bert, BertConfig
from thne.train.config import TrainConfig
from thne.train.thne_optimiser import THNEOptimiser, clip_grad_norms_

B, L, TV, TA, DV, DA = 6, 12, 9, 14, 7, 5
BERT = {
    "vocab_size": 120,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
# A clip limit the gradients exceed, network and probe alike: both clips act, by different
# factors.
CFG = TrainConfig(grad_clip=0.02, lr=1e-3, bert_lr=5e-5, alpha=0.3, beta=0.1, batch_size=B)
# float32 throughout; the step's sums are taken in other orders than before (the LSTM over the
# padded batch, bmm for einsum, the diagonal's mean for cross_entropy, add with alpha): the loss
# terms agree to about 2e-7 (relative), the gradients to 7e-9 (absolute).
TERMS = {"rtol": 1e-5, "atol": 1e-8}
GRADS = {"rtol": 1e-4, "atol": 1e-8}
# Some gradients are zero in exact arithmetic (the critics' output bias: a constant added to a
# row of logits leaves its softmax as it is) and rounding noise of 1e-11 in float32, which Adam
# (eps 1e-8) turns into moves of about 1e-5 lr, differently in every order of summation. 5e-5
# is 5 % of one step of lr 1e-3; any other change of a gradient moves its weight by about lr.
PARAMS = {"rtol": 1e-5, "atol": 5e-5}


def batch(seed: int) -> dict[str, torch.Tensor]:
    """Clips of several lengths, some of a single step; tokens padded at the end."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.tensor([12, 5, 9, 12, 3, 7])
    mask = (torch.arange(L)[None, :] < tokens[:, None]).long()
    return {
        "input_ids": torch.randint(1, 120, (B, L), generator=g) * mask,
        "attention_mask": mask,
        "visual": torch.randn(B, TV, DV, generator=g),
        "visual_len": torch.tensor([9, 3, 5, 9, 1, 7]),
        "acoustic": torch.randn(B, TA, DA, generator=g),
        "acoustic_len": torch.tensor([14, 2, 10, 6, 14, 1]),
        "label": torch.rand(B, generator=g) * 6 - 3,
    }


def build(variant: str = "thne") -> THNE:
    """A small t-HNE with thne's BERT, seeded; unequal visual and acoustic widths, as MOSEI's."""
    torch.manual_seed(0)
    return THNE(
        Bert(BertConfig(**BERT)),
        32,
        DV,
        DA,
        visual_hidden=8,
        acoustic_hidden=6,
        fusion_dim=16,
        variant=VARIANTS[variant],
    ).train()


def models() -> tuple[THNE, THNE]:
    """t-HNE, and a copy with transformers' BertModel holding the same weights."""
    model = build()
    reference = copy.deepcopy(model)
    hf = BertModel(HFBertConfig(**BERT, attn_implementation="sdpa"))
    hf.load_state_dict(model.text_encoder.state_dict())
    reference.text_encoder = hf
    return model.train(), reference.train()


def former_step(model: THNE, opt: THNEOptimiser, b: dict) -> dict[str, torch.Tensor]:
    """The step as it was computed before, from ``model``'s layers; returns its terms and
    asserts that both clips acted."""
    alpha, beta = CFG.alpha, CFG.beta
    h_t = model.text_encoder(
        input_ids=b["input_ids"], attention_mask=b["attention_mask"]
    ).last_hidden_state[:, 0]

    def encode(encoder, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, _) = encoder.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, h_n[-1]

    def attend(attention, steps, lengths):
        query = h_t @ attention.w_m
        scores = torch.einsum("bd,btd->bt", query, steps) * attention.scale
        pad = torch.arange(steps.shape[1])[None, :] >= lengths[:, None]
        weights = scores.masked_fill(pad, float("-inf")).softmax(dim=-1)
        return torch.einsum("bt,btd->bd", weights, steps)

    def nce(logits):
        return F.cross_entropy(logits, torch.arange(logits.shape[0]))

    steps_v, h_v = encode(model.visual_encoder, b["visual"], b["visual_len"])
    steps_a, h_a = encode(model.acoustic_encoder, b["acoustic"], b["acoustic_len"])
    h_vt = attend(model.attend_v, steps_v, b["visual_len"])
    h_at = attend(model.attend_a, steps_a, b["acoustic_len"])
    fused = model.fusion(torch.cat([h_t, h_vt, h_at], dim=-1))
    pred = model.regressor(fused).squeeze(-1)
    terms = {
        "task": F.l1_loss(pred, b["label"]),
        "l_tv": nce(model.critic_tv(h_t, h_vt)),
        "l_ta": nce(model.critic_ta(h_t, h_at)),
        "l_fv": nce(model.cpc_v.logits(fused, h_v)),
        "l_fa": nce(model.cpc_a.logits(fused, h_a)),
    }
    loss = terms["task"]
    for name, weight in (("l_ta", alpha), ("l_tv", alpha), ("l_fa", beta), ("l_fv", beta)):
        loss = loss + weight * terms[name]
    probe = nce(model.cpc_t_probe.logits(fused.detach(), h_t.detach()))
    opt.adam.zero_grad(set_to_none=True)
    (loss + probe).backward()
    for group in (opt.network, opt.probe):
        assert torch.nn.utils.clip_grad_norm_(group, CFG.grad_clip) > CFG.grad_clip
    opt.adam.step()
    return {k: v.detach() for k, v in {**terms, "total": loss}.items()}


def assert_close(a: torch.Tensor | None, b: torch.Tensor | None, what: str, tol: dict) -> None:
    if a is None or b is None:  # a gradient the loss does not reach (BERT's pooler)
        assert a is None and b is None, what
        return
    a, b = a.detach(), b.detach()
    assert torch.allclose(a, b, **tol), (what, float((a - b).abs().max()))


def test_the_step_computes_what_it_computed_before():
    """Three steps, dropout on (the same draws in both), both clips acting: the loss terms, the
    clipped gradients and the updated parameters of every layer agree within float32
    rounding, and so does Adam's state, which the next step's update reads."""
    model, reference = models()
    opt, former = THNEOptimiser(model, CFG), THNEOptimiser(reference, CFG)
    for step in range(3):
        b = batch(step)
        torch.manual_seed(100 + step)
        terms = opt.step("train", b, {})
        torch.manual_seed(100 + step)
        expected = former_step(reference, former, b)
        assert terms.keys() == expected.keys()
        for name in terms:
            assert_close(terms[name], expected[name], f"step {step} {name}", TERMS)
        theirs = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            assert_close(p.grad, theirs[name].grad, f"step {step} grad {name}", GRADS)
            assert_close(p, theirs[name], f"step {step} {name}", PARAMS)


def test_grouped_clip_is_clip_grad_norm_per_group():
    """One _foreach_norm for both groups, each clipped by its own norm: the numbers of
    clip_grad_norm_ on each group, bit for bit, whether a group is clipped or not."""
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,), (2, 2, 2), (7,), (1,)]
    ours = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        a.grad = torch.randn(a.shape, generator=g) * (1.0 if i < 3 else 0.1)
        b.grad = a.grad.clone()
    ours[4].grad = None  # a parameter the loss did not reach
    theirs[4].grad = None
    groups = [ours[:3], ours[3:]]
    # 1.0: the first group is clipped, the second (norm < 1) is not.
    totals = clip_grad_norms_(groups, 1.0)
    for i, group in enumerate([theirs[:3], theirs[3:]]):
        assert torch.equal(totals[i], torch.nn.utils.clip_grad_norm_(group, 1.0, foreach=True))
    assert totals[0] > 1.0 > totals[1]
    for a, b in zip(ours, theirs, strict=True):
        assert (a.grad is None and b.grad is None) or torch.equal(a.grad, b.grad)


class Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("variant", ["thne", "no_deno1", "text_only"])
def test_the_step_reads_nothing_back_from_the_device(variant):
    """No operation of the step copies a value to the host (``.item()``, ``.tolist()``,
    ``.cpu()`` of lengths to pack sequences), which on a GPU would wait for the queued work:
    checked on the CPU by the operations dispatched. Both gradient clips share one norm pass."""
    model = build(variant)
    opt = THNEOptimiser(model, CFG)
    b = batch(0)
    opt.step("train", b, {})  # Adam's state
    ops = Ops()
    with ops:
        opt.step("train", b, {})
    assert "_local_scalar_dense" not in ops.names and "_pack_padded_sequence" not in ops.names
    assert ops.names.count("_foreach_norm") == 1
