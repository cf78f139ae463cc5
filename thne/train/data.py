"""Training data: the manifest, text tokens and feature files, loaded once into tensors.

Each split becomes one :class:`SplitTensors` of padded sequences with their lengths, built before
training starts, so the loop does no tokenisation or HDF5 reading. Acoustic and visual
features are standardised with statistics of the train split only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from thne.data.manifest import SPLITS, Clip, read_manifest
from thne.features.store import read_h5


@dataclass
class SplitTensors:
    clip_ids: list[str]
    texts: list[str]
    label: torch.Tensor  # [N] float32
    input_ids: torch.Tensor  # [N, L] int64
    attention_mask: torch.Tensor  # [N, L] int64
    visual: torch.Tensor  # [N, T_v, D_v] float32, zero-padded
    visual_len: torch.Tensor  # [N] int64
    acoustic: torch.Tensor  # [N, T_a, D_a]
    acoustic_len: torch.Tensor  # [N]

    def __len__(self) -> int:
        return len(self.clip_ids)

    def batch(self, index: torch.Tensor, device: torch.device | str) -> dict[str, torch.Tensor]:
        """Rows ``index`` on ``device``, padded only to the longest sequence of the batch."""
        vl, al = self.visual_len[index], self.acoustic_len[index]
        mask = self.attention_mask[index]
        # Tokens are right-padded, so cutting the all-padding tail leaves [CLS] unchanged and
        # saves most of the encoder's work on short transcripts.
        n_tokens = int(mask.sum(dim=1).max())
        out = {
            "input_ids": self.input_ids[index, :n_tokens],
            "attention_mask": mask[:, :n_tokens],
            "visual": self.visual[index, : int(vl.max())],
            "visual_len": vl,
            "acoustic": self.acoustic[index, : int(al.max())],
            "acoustic_len": al,
            "label": self.label[index],
        }
        return {k: v.to(device, non_blocking=True) for k, v in out.items()}


PRESENCE_CHANNELS: tuple[str, ...] = ("face_detected", "audio_present")


@dataclass
class Normaliser:
    """Per-feature mean and std from the train split; applied to every split.

    Rows whose presence channel (``face_detected``, ``audio_present``) is 0 hold zeros that mean
    "nothing observed". They are left out of the statistics and stay zero after normalising,
    and the presence channel itself keeps its 0/1 values.
    """

    mean: np.ndarray
    std: np.ndarray
    presence: int | None = None

    @classmethod
    def fit(cls, sequences: list[np.ndarray], names: list[str] | None = None) -> Normaliser:
        presence = next((names.index(n) for n in PRESENCE_CHANNELS if names and n in names), None)
        stacked = np.concatenate(sequences, axis=0).astype(np.float64)
        if presence is not None and (stacked[:, presence] > 0).any():
            stacked = stacked[stacked[:, presence] > 0]
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        # A constant column (e.g. a presence flag that is always 1) would divide by zero.
        std[std < 1e-8] = 1.0
        if presence is not None:
            mean[presence], std[presence] = 0.0, 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32), presence)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        if self.presence is not None:
            z[x[:, self.presence] <= 0] = 0.0
        return z


def fit_length(x: np.ndarray, max_frames: int) -> np.ndarray:
    """Cap a sequence at ``max_frames`` steps by evenly spaced sampling (keeps the whole clip)."""
    if x.shape[0] <= max_frames:
        return x
    idx = np.linspace(0, x.shape[0] - 1, max_frames).round().astype(int)
    return x[idx]


def _pad(seqs: list[np.ndarray], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [max(1, s.shape[0]) for s in seqs]
    out = np.zeros((len(seqs), max(lengths, default=1), dim), dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return torch.from_numpy(out), torch.tensor(lengths, dtype=torch.int64)


@dataclass
class Dataset:
    splits: dict[str, SplitTensors]
    visual_norm: Normaliser
    acoustic_norm: Normaliser
    visual_names: list[str]
    acoustic_names: list[str]
    dropped: list[dict]  # clips of the manifest missing from a feature file, with the reason


def load_dataset(
    manifest: str | os.PathLike,
    text_h5: str | os.PathLike,
    audio_h5: str | os.PathLike,
    visual_h5: str | os.PathLike,
    *,
    max_frames: int = 500,
) -> Dataset:
    clips = read_manifest(manifest)
    ids = [c.clip_id for c in clips]
    audio = read_h5(audio_h5, ids)
    visual = read_h5(visual_h5, ids)
    with h5py.File(text_h5, "r", locking=False) as h5:
        text_ids = [c.decode() if isinstance(c, bytes) else str(c) for c in h5["clip_ids"][()]]
        row = {c: i for i, c in enumerate(text_ids)}
        input_ids = h5["input_ids"][()]
        attention_mask = h5["attention_mask"][()]

    reasons = {}
    for name, store in (("audio", audio), ("visual", visual)):
        recorded = {e["clip_id"]: e["reason"] for e in store.excluded}
        for c in ids:
            if c not in store.features:
                reasons.setdefault(c, f"no {name} features: {recorded.get(c, 'absent from file')}")
    for c in ids:
        if c not in row:
            reasons.setdefault(c, "no tokens in text.h5")
    dropped = [{"clip_id": c, "reason": r} for c, r in reasons.items()]
    if dropped:
        print(f"{len(dropped)} clip(s) left out of training: features missing", file=sys.stderr)
    usable = [c for c in clips if c.clip_id not in reasons]

    train = [c for c in usable if c.split == "train"]
    if not train:
        raise ValueError(f"{manifest}: no usable train clips")
    v_norm = Normaliser.fit([visual.features[c.clip_id] for c in train], visual.feature_names)
    a_norm = Normaliser.fit([audio.features[c.clip_id] for c in train], audio.feature_names)

    def build(split_clips: list[Clip]) -> SplitTensors:
        rows = [row[c.clip_id] for c in split_clips]
        v, vl = _pad(
            [fit_length(v_norm(visual.features[c.clip_id]), max_frames) for c in split_clips],
            len(visual.feature_names),
        )
        a, al = _pad(
            [fit_length(a_norm(audio.features[c.clip_id]), max_frames) for c in split_clips],
            len(audio.feature_names),
        )
        return SplitTensors(
            clip_ids=[c.clip_id for c in split_clips],
            texts=[c.text for c in split_clips],
            label=torch.tensor([c.label for c in split_clips], dtype=torch.float32),
            input_ids=torch.from_numpy(input_ids[rows].astype(np.int64)),
            attention_mask=torch.from_numpy(attention_mask[rows].astype(np.int64)),
            visual=v,
            visual_len=vl,
            acoustic=a,
            acoustic_len=al,
        )

    splits = {s: build([c for c in usable if c.split == s]) for s in SPLITS}
    for s, t in splits.items():
        if len(t) == 0:
            raise ValueError(f"{manifest}: no usable clips in split {s}")
    return Dataset(splits, v_norm, a_norm, visual.feature_names, audio.feature_names, dropped)
