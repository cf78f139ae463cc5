"""Tokenisation of the manifest's transcripts into ``text.h5``."""

from __future__ import annotations

import os

import h5py
import numpy as np

from thne.data.manifest import read_manifest
from thne.io import atomic_path, ensure_room
from thne.text.encoder import load_tokenizer


def tokenize_manifest(
    manifest: str | os.PathLike, out_path: str | os.PathLike, *, encoder: str, max_length: int = 50
) -> int:
    """Write ``clip_ids``, ``input_ids`` int32 [N, L] and ``attention_mask`` int8 [N, L].

    Text is already lower-cased by ingest; the tokenizer's own lower-casing (uncased models)
    is kept as the model expects it. Returns the number of transcripts cut at ``max_length``.
    """
    clips = read_manifest(manifest)
    tokenizer = load_tokenizer(encoder)
    texts = [c.text for c in clips]
    enc = tokenizer(
        texts, max_length=max_length, padding="max_length", truncation=True, return_tensors="np"
    )
    full = tokenizer(texts, truncation=False)["input_ids"]
    truncated = sum(len(ids) > max_length for ids in full)
    with atomic_path(out_path) as tmp:
        ensure_room(tmp, enc["input_ids"].size * 5 + 64 * len(clips))
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset(
                "clip_ids", data=np.array([c.clip_id for c in clips], dtype=h5py.string_dtype())
            )
            h5.create_dataset("input_ids", data=enc["input_ids"].astype(np.int32))
            h5.create_dataset("attention_mask", data=enc["attention_mask"].astype(np.int8))
            h5.attrs["tokenizer"] = encoder
            h5.attrs["max_length"] = max_length
            h5.attrs["truncated"] = truncated
    return truncated
