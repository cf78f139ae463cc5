"""GPU and host memory of one MOSI and one MOSEI training job, from synthetic datasets of
their shape.

Shape: the published splits' clip counts (MOSI 1,284 / 229 / 686; MOSEI 16,326 / 1,871 /
4,659), 50 text tokens, and the widest feature sets thne trains on, the SDK's COVAREP (74
columns at 100 Hz) and Facet (35 at 30 Hz), clips of 3.0 to 11.6 s (uniform, as in
benchmarks/import_features.py), capped at ``max_frames`` 500 steps.

What a job holds:

- the splits' tensors (:class:`thne.train.data.SplitTensors`, every clip padded to the
  longest of its split, that is to ``max_frames``): built on the host, then moved to the
  device once and kept there; the host copies are freed after the move;
- while loading, on the host: every clip's raw feature rows as read from the HDF5 files
  (float32), beside the padded tensors being built;
- on the device: the weights, their gradients and Adam's two moments (4 x 4 bytes per
  parameter, float32), and one batch's activations (not computed here: benchmarks/
  train_speed.py measures the peak on a GPU).

The splits' bytes come from tensors built by the real ``split_tensors`` for a sample of
synthetic clips, scaled to the split's clip count (each clip takes the same bytes once padded);
tests/test_memory_figures.py checks those byte counts. Parameter counts come from the real
model with randomly initialised encoders of bert-base and MiniLM size (nothing downloaded).

    python benchmarks/memory.py
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GiB = 2**30
SAMPLE = 64  # clips built for real per split; the rest is scaled from them


@dataclass(frozen=True)
class Shape:
    clips: dict[str, int]
    text_len: int = 50
    max_frames: int = 500
    visual_dim: int = 35
    visual_hz: float = 30.0
    acoustic_dim: int = 74
    acoustic_hz: float = 100.0
    seconds: tuple[float, float] = (3.0, 11.6)


SHAPES = {
    "mosi": Shape(clips={"train": 1284, "valid": 229, "test": 686}),
    "mosei": Shape(clips={"train": 16326, "valid": 1871, "test": 4659}),
}
ENCODERS = {
    "bert-base": {"hidden_size": 768, "num_hidden_layers": 12, "intermediate_size": 3072},
    "minilm": {"hidden_size": 384, "num_hidden_layers": 6, "intermediate_size": 1536},
}


def padded_bytes_per_clip(shape: Shape) -> int:
    """Bytes of one clip in the splits' tensors: label (float32), token ids and mask (int64),
    visual and acoustic steps (float32) padded to max_frames, and their two lengths (int64)."""
    return (
        4
        + 2 * 8 * shape.text_len
        + 4 * shape.max_frames * (shape.visual_dim + shape.acoustic_dim)
        + 2 * 8
    )


def longest_seconds(shape: Shape) -> float:
    return shape.max_frames / min(shape.visual_hz, shape.acoustic_hz) + 1.0


def synthetic_clips(shape: Shape, n: int, seed: int = 0):
    """``n`` clips' raw visual and acoustic rows (float32, at the shape's rates), their token
    ids and mask. The first clip is long enough to reach max_frames in both modalities, as the
    longest clips of MOSI and MOSEI do, so a split is padded to max_frames."""
    rng = np.random.default_rng(seed)
    seconds = rng.uniform(*shape.seconds, n)
    seconds[0] = longest_seconds(shape)
    visual = [
        rng.standard_normal((int(s * shape.visual_hz), shape.visual_dim), dtype=np.float32)
        for s in seconds
    ]
    acoustic = [
        rng.standard_normal((int(s * shape.acoustic_hz), shape.acoustic_dim), dtype=np.float32)
        for s in seconds
    ]
    lengths = rng.integers(10, shape.text_len + 1, n)
    mask = (np.arange(shape.text_len)[None, :] < lengths[:, None]).astype(np.int64)
    ids = rng.integers(1000, 30000, (n, shape.text_len)) * mask
    return visual, acoustic, ids, mask


def synthetic_split(shape: Shape, n: int, seed: int = 0):
    """A split of ``n`` synthetic clips built by the real ``split_tensors``, and the raw
    features it was built from."""
    from thne.features.normalise import Normaliser
    from thne.train.data import split_tensors

    visual, acoustic, ids, mask = synthetic_clips(shape, n, seed)
    v_norm = Normaliser.fit(visual, [f"v{i}" for i in range(shape.visual_dim)])
    a_norm = Normaliser.fit(acoustic, [f"a{i}" for i in range(shape.acoustic_dim)])
    split = split_tensors(
        [f"c{i}" for i in range(n)],
        [""] * n,
        [0.0] * n,
        ids,
        mask,
        visual,
        acoustic,
        visual_norm=v_norm,
        acoustic_norm=a_norm,
        max_frames=shape.max_frames,
    )
    return split, visual, acoustic


def tensor_bytes(split) -> int:
    import torch

    return sum(v.nbytes for v in vars(split).values() if isinstance(v, torch.Tensor))


def raw_bytes_per_clip(shape: Shape) -> float:
    """Mean bytes of one clip's raw feature rows (float32) as read from the feature files."""
    seconds = sum(shape.seconds) / 2
    rows = seconds * (shape.visual_hz * shape.visual_dim + shape.acoustic_hz * shape.acoustic_dim)
    return 4 * rows


def model_parameters(encoder: str, shape: Shape, hidden: tuple[int, int]) -> int:
    """Parameters of t-HNE with a randomly initialised BERT-family encoder of this size."""
    from transformers import BertConfig, BertModel

    from thne.model.thne import THNE

    bert = BertModel(
        BertConfig(num_attention_heads=12, **ENCODERS[encoder]), add_pooling_layer=False
    )
    model = THNE(
        bert,
        ENCODERS[encoder]["hidden_size"],
        shape.visual_dim,
        shape.acoustic_dim,
        visual_hidden=hidden[0],
        acoustic_hidden=hidden[1],
        fusion_dim=128,
    )
    return sum(p.numel() for p in model.parameters())


def main() -> None:
    # Hidden sizes of config/config.yaml (visual, acoustic).
    hidden = {"mosi": (32, 32), "mosei": (64, 16)}
    print(__doc__.split("\n\n")[0].replace("\n", " "))
    for name, shape in SHAPES.items():
        per_clip = padded_bytes_per_clip(shape)
        split, visual, acoustic = synthetic_split(shape, SAMPLE)
        measured = tensor_bytes(split) / SAMPLE
        assert measured == per_clip, (measured, per_clip)
        n = sum(shape.clips.values())
        splits = n * per_clip
        raw = n * raw_bytes_per_clip(shape)
        sample_raw = sum(x.nbytes for x in visual + acoustic) / SAMPLE
        print(
            f"\n{name}: {n} clips; padded tensors {per_clip} B/clip (built: {measured:.0f}), "
            f"raw rows {raw_bytes_per_clip(shape):.0f} B/clip on average "
            f"(sample of {SAMPLE}: {sample_raw:.0f})"
        )
        print(f"  splits' tensors: {splits / GiB:6.2f} GiB (device, whole run)")
        print(
            f"  host while loading: raw rows {raw / GiB:.2f} GiB + padded tensors "
            f"{splits / GiB:.2f} GiB = {(raw + splits) / GiB:.2f} GiB at the peak; "
            "after the move to the GPU the host keeps neither"
        )
        for encoder in ENCODERS:
            params = model_parameters(encoder, shape, hidden[name])
            state = 16 * params
            print(
                f"  {encoder:9s}: {params / 1e6:6.1f} M parameters, weights + gradients + Adam "
                f"{state / GiB:.2f} GiB; GPU without activations {(splits + state) / GiB:.2f} GiB"
            )


if __name__ == "__main__":
    main()
