"""BERT's encoder in plain PyTorch, for the BERT-architecture text encoders (all-MiniLM-L6-v2,
the offline default, and bert-base-uncased, the paper's).

Why not transformers' ``BertModel``: importing it costs about 2.5 s of CPU under transformers 5
(it pulls in ``torch._dynamo``, ``torch.distributed.tensor`` and ``scipy.optimize``), more than
a demo training run's epochs, and every training and scoring job paid it before any work.

The module, parameter and buffer names are ``BertModel``'s, so a Hugging Face checkpoint loads
into it as it is, and a trained run's state dict is the same whichever class built it (tests
compare the two on the shipped weights). Reading guide, for one layer of
Devlin et al. (2019), itself the post-LayerNorm Transformer encoder of Vaswani et al. (2017):

    x = LayerNorm(word + position + token type embeddings)
    a = LayerNorm(x + Dense(MultiHeadAttention(x, mask)))      # attention.self / .output
    y = LayerNorm(a + Dense(act(Dense(a))))                    # intermediate / output

with dropout after each embedding sum, on the attention probabilities, and after each Dense
that feeds a residual sum, as the checkpoints were trained.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# ``hidden_act`` values of a BERT config.json that this module computes exactly.
ACTIVATIONS = {
    "gelu": F.gelu,
    "relu": F.relu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT ``config.json`` that the encoder reads."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, raw: dict) -> BertConfig:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if raw.get(k) is not None})


def plain_bert_config(raw: dict) -> BertConfig | None:
    """``raw`` (a parsed config.json) as a :class:`BertConfig` when it describes a model this
    module computes exactly: a BERT encoder with absolute positions and a known activation.
    None for anything else (RoBERTa, relative positions, a decoder), which transformers loads."""
    plain = (
        raw.get("model_type") == "bert"
        and raw.get("position_embedding_type", "absolute") == "absolute"
        and raw.get("hidden_act", "gelu") in ACTIVATIONS
        and not raw.get("is_decoder")
        and not raw.get("add_cross_attention")
    )
    return BertConfig.from_dict(raw) if plain else None


class EncoderOutput(NamedTuple):
    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor


class Embeddings(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)
        positions = torch.arange(c.max_position_embeddings).unsqueeze(0)
        self.register_buffer("position_ids", positions, persistent=False)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.shape[1]]
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x + self.position_embeddings(positions)))


class SelfAttention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        if c.hidden_size % c.num_attention_heads:
            raise ValueError(
                f"hidden_size {c.hidden_size} is not a multiple of "
                f"num_attention_heads {c.num_attention_heads}"
            )
        self.heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout_p = c.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, tokens: int) -> torch.Tensor:
        d = x.shape[-1]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(-1, tokens, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.query(x)),
            heads(self.key(x)),
            heads(self.value(x)),
            attn_mask=mask,
            dropout_p=self.dropout_p if self.training else 0.0,
            scale=1.0 / math.sqrt(d // self.heads),
        )
        return out.transpose(1, 2).reshape(-1, d)


class DenseResidual(nn.Module):
    """Dense, dropout, then LayerNorm of the sum with the residual input."""

    def __init__(self, c: BertConfig, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class Attention(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.self = SelfAttention(c)
        self.output = DenseResidual(c, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, tokens: int) -> torch.Tensor:
        return self.output(self.self(x, mask, tokens), x)


class Intermediate(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.attention = Attention(c)
        self.intermediate = Intermediate(c)
        self.output = DenseResidual(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, tokens: int) -> torch.Tensor:
        a = self.attention(x, mask, tokens)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(c) for _ in range(c.num_hidden_layers))


class Pooler(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(cls))


class Bert(nn.Module):
    """BERT's encoder with its pooler, as ``BertModel`` lays it out."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.pooler = Pooler(config)
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # The initialisation BERT was pre-trained from: what a layer a checkpoint lacks starts
        # from, and what the shape-only builds of tests and benchmarks hold.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> EncoderOutput:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)
        # True where a token may be attended to. Built even when nothing is padded: asking
        # would cost a device sync per step.
        mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        b, n, d = x.shape
        # The layers take one row per token, [B * N, D]: each Linear is then one addmm, without
        # the reshapes F.linear makes around it for [B, N, D] (the same addmm, the same numbers),
        # an eighth of a layer's operations forward and backward.
        x = x.view(b * n, d)
        for layer in self.encoder.layer:
            x = layer(x, mask, n)
        x = x.view(b, n, d)
        return EncoderOutput(x, self.pooler(x[:, 0]))


def load_bert(path: Path, config: BertConfig) -> Bert:
    """The encoder with the float32 weights of ``path / "model.safetensors"``: a checkpoint of
    ``BertModel`` or of a model built on it (``bert.``-prefixed keys, task heads ignored). A
    checkpoint without a pooler keeps BERT's initial one, as transformers does; any other
    missing weight is an error."""
    from safetensors.torch import load_file

    file = path / "model.safetensors"
    weights = load_file(file)
    if not any(k.startswith("embeddings.") for k in weights):
        weights = {k[5:]: v for k, v in weights.items() if k.startswith("bert.")}
    # Built without drawing from the global generator, as transformers loads a checkpoint:
    # the modules a training run builds after its encoder start from the same numbers.
    with torch.random.fork_rng(devices=[]):
        model = Bert(config)
    wanted = model.state_dict()
    missing = sorted(k for k in wanted if k not in weights and not k.startswith("pooler."))
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        lacks = ", ".join(missing[:3]) + more
        raise ValueError(f"{file} is not a BERT checkpoint: it lacks {lacks}")
    shapes = [k for k in wanted if k in weights and weights[k].shape != wanted[k].shape]
    if shapes:
        raise ValueError(f"{file}: {shapes[0]} does not fit config.json")
    model.load_state_dict({k: weights[k].float() for k in wanted if k in weights}, strict=False)
    return model


def read_config(path: Path) -> dict:
    return json.loads((path / "config.json").read_text())
