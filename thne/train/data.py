"""Training data: the manifest, text tokens and feature files, loaded once into tensors.

Each split becomes one :class:`SplitTensors` of padded sequences with their lengths, built before
training starts, so the loop does no tokenisation or HDF5 reading. Acoustic and visual
features are standardised with statistics of the train split only. Clips are read from the
feature files one at a time, straight into their split's padded arrays: MOSEI's raw rows alone
are 5 GiB, and a loader that held them all beside the padded arrays needed twice the memory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch

from thne.data.manifest import SPLITS, Clip, read_manifest
from thne.features.normalise import Normaliser
from thne.features.reader import FeatureReader
from thne.features.streamed_fit import fit_streamed


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

    def to(self, device: torch.device | str) -> SplitTensors:
        """This split with every tensor on ``device`` (moved once, before training)."""
        moved = {
            name: value.to(device) if isinstance(value, torch.Tensor) else value
            for name, value in vars(self).items()
        }
        return SplitTensors(**moved)

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """Rows ``index`` (on the split's device), padded only to the longest sequence of the
        batch."""
        vl, al = self.visual_len[index], self.acoustic_len[index]
        mask = self.attention_mask[index]
        # Tokens are right-padded, so cutting the all-padding tail leaves [CLS] unchanged and
        # saves most of the encoder's work on short transcripts. One host sync for all three.
        n_tokens, n_v, n_a = torch.stack([mask.sum(dim=1).max(), vl.max(), al.max()]).tolist()
        return {
            "input_ids": self.input_ids[index, :n_tokens],
            "attention_mask": mask[:, :n_tokens],
            "visual": self.visual[index, :n_v],
            "visual_len": vl,
            "acoustic": self.acoustic[index, :n_a],
            "acoustic_len": al,
            "label": self.label[index],
        }


def fit_length(x: np.ndarray, max_frames: int) -> np.ndarray:
    """Cap a sequence at ``max_frames`` steps by evenly spaced sampling (keeps the whole clip)."""
    if x.shape[0] <= max_frames:
        return x
    idx = np.linspace(0, x.shape[0] - 1, max_frames).round().astype(int)
    return x[idx]


def padded_features(
    seqs: Iterable[np.ndarray], frames: Sequence[int], norm: Normaliser, max_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw sequences standardised with ``norm``, capped at ``max_frames`` steps and zero-padded
    into one [N, T, D] tensor, with their lengths (at least 1). ``frames`` are the sequences'
    row counts, known before any is read: the array is allocated once, and each sequence can be
    let go as soon as it is copied in, so ``seqs`` may read them one at a time."""
    lengths = [max(1, min(f, max_frames)) for f in frames]
    out = np.zeros((len(lengths), max(lengths, default=1), len(norm.mean)), dtype=np.float32)
    for i, x in enumerate(seqs):
        s = fit_length(norm(x), max_frames)
        out[i, : s.shape[0]] = s
    return torch.from_numpy(out), torch.tensor(lengths, dtype=torch.int64)


def split_tensors(
    clip_ids: list[str],
    texts: list[str],
    labels: Sequence[float],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    visual: list[np.ndarray],
    acoustic: list[np.ndarray],
    *,
    visual_norm: Normaliser,
    acoustic_norm: Normaliser,
    max_frames: int,
) -> SplitTensors:
    """Clips as the model sees them: features standardised, capped at ``max_frames`` steps
    and zero-padded; tokens as given (one row per clip). Training and ``thne predict`` both
    build their tensors with :func:`padded_features` and :func:`assemble`, so a clip scored
    later goes through exactly what it would have in training."""
    return assemble(
        clip_ids,
        texts,
        labels,
        input_ids,
        attention_mask,
        padded_features(visual, [len(x) for x in visual], visual_norm, max_frames),
        padded_features(acoustic, [len(x) for x in acoustic], acoustic_norm, max_frames),
    )


def assemble(
    clip_ids: list[str],
    texts: list[str],
    labels: Sequence[float],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    visual: tuple[torch.Tensor, torch.Tensor],
    acoustic: tuple[torch.Tensor, torch.Tensor],
) -> SplitTensors:
    """One split from its clips' tokens and their padded features with lengths."""
    return SplitTensors(
        clip_ids=list(clip_ids),
        texts=list(texts),
        label=torch.tensor(list(labels), dtype=torch.float32),
        input_ids=torch.from_numpy(np.asarray(input_ids).astype(np.int64)),
        attention_mask=torch.from_numpy(np.asarray(attention_mask).astype(np.int64)),
        visual=visual[0],
        visual_len=visual[1],
        acoustic=acoustic[0],
        acoustic_len=acoustic[1],
    )


@dataclass
class Dataset:
    splits: dict[str, SplitTensors]
    visual_norm: Normaliser
    acoustic_norm: Normaliser
    visual_names: list[str]
    acoustic_names: list[str]
    dropped: list[dict]  # clips of the manifest missing from a feature file, with the reason
    # How the inputs were made: each feature file's extractor, config and feature names, the
    # tokenizer and its max_length, and max_frames. Saved in run.json, so that new media can
    # be scored later through exactly the same extraction (thne predict).
    provenance: dict = field(default_factory=dict)


def load_dataset(
    manifest: str | os.PathLike,
    text_h5: str | os.PathLike,
    audio_h5: str | os.PathLike,
    visual_h5: str | os.PathLike,
    *,
    max_frames: int = 500,
    visual_stats: str | os.PathLike | None = None,
    audio_stats: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> Dataset:
    """All splits as tensors on ``device``. Features are standardised with the statistics files
    written by ``thne stats`` when given (all train clips of each file), else with statistics
    fitted here on the train clips that have every modality.

    Clips are read from the feature files one at a time, straight into their split's padded
    array, and each padded array goes to ``device`` as soon as it is filled: the host never
    holds every clip's raw rows, and, off the CPU, holds one padded array at a time."""
    clips = read_manifest(manifest)
    ids = [c.clip_id for c in clips]
    with FeatureReader(audio_h5) as audio, FeatureReader(visual_h5) as visual:
        with h5py.File(text_h5, "r", locking=False) as h5:
            text_ids = [c.decode() if isinstance(c, bytes) else str(c) for c in h5["clip_ids"][()]]
            row = {c: i for i, c in enumerate(text_ids)}
            input_ids = h5["input_ids"][()]
            attention_mask = h5["attention_mask"][()]
            text_attrs = {k: _plain(v) for k, v in h5.attrs.items()}

        reasons = {}
        for name, store in (("audio", audio), ("visual", visual)):
            recorded = {e["clip_id"]: e["reason"] for e in store.excluded}
            for c in ids:
                if c not in store:
                    reasons.setdefault(
                        c, f"no {name} features: {recorded.get(c, 'absent from file')}"
                    )
        for c in ids:
            if c not in row:
                reasons.setdefault(c, "no tokens in text.h5")
        dropped = [{"clip_id": c, "reason": r} for c, r in reasons.items()]
        if dropped:
            print(f"{len(dropped)} clip(s) left out of training: features missing", file=sys.stderr)
        usable = [c for c in clips if c.clip_id not in reasons]

        train = [c.clip_id for c in usable if c.split == "train"]
        if not train:
            raise ValueError(f"{manifest}: no usable train clips")
        v_norm = _normaliser(visual, train, visual_stats)
        a_norm = _normaliser(audio, train, audio_stats)

        def features(store: FeatureReader, split_ids: list[str], norm: Normaliser):
            x, lengths = padded_features(
                (store.read(c) for c in split_ids),
                [store.frames(c) for c in split_ids],
                norm,
                max_frames,
            )
            return x.to(device), lengths

        def build(split_clips: list[Clip]) -> SplitTensors:
            split_ids = [c.clip_id for c in split_clips]
            rows = [row[c] for c in split_ids]
            return assemble(
                split_ids,
                [c.text for c in split_clips],
                [c.label for c in split_clips],
                input_ids[rows],
                attention_mask[rows],
                features(visual, split_ids, v_norm),
                features(audio, split_ids, a_norm),
            ).to(device)

        splits = {s: build([c for c in usable if c.split == s]) for s in SPLITS}
    for s, t in splits.items():
        if len(t) == 0:
            raise ValueError(f"{manifest}: no usable clips in split {s}")
    provenance = {
        "visual": _feature_provenance(visual),
        "acoustic": _feature_provenance(audio),
        "text": {
            "encoder": text_attrs.get("tokenizer"),
            "max_length": text_attrs.get("max_length"),
        },
        "max_frames": max_frames,
    }
    return Dataset(
        splits, v_norm, a_norm, visual.feature_names, audio.feature_names, dropped, provenance
    )


def _normaliser(
    store: FeatureReader, train: list[str], stats: str | os.PathLike | None
) -> Normaliser:
    """The statistics file's normaliser, else one fitted on the ``train`` clips of ``store``,
    read clip by clip (twice) rather than all at once."""
    if stats:
        return Normaliser.load(stats, store.feature_names)
    return fit_streamed(lambda: (store.read(c) for c in train), store.feature_names)


def _feature_provenance(store: FeatureReader) -> dict:
    return {
        "extractor": store.extractor,
        "config": store.config,
        "feature_names": list(store.feature_names),
    }


def _plain(value):
    """An HDF5 attribute as a plain Python value (numpy scalars and bytes are not)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value
