"""GPU and host memory of one MOSI and one MOSEI training job, from synthetic datasets of
their shape; with ``--measure``, the host peak of loading measured beside the model's.

Shape: the published splits' clip counts (MOSI 1,284 / 229 / 686; MOSEI 16,326 / 1,871 /
4,659), 50 text tokens, and the widest feature sets thne trains on, the SDK's COVAREP (74
columns at 100 Hz) and Facet (35 at 30 Hz), clips of 3.0 to 11.6 s (uniform, as in
benchmarks/import_features.py), capped at ``max_frames`` 500 steps.

What a job holds:

- the splits' tensors (:class:`thne.train.data.SplitTensors`, every clip padded to the
  longest of its split, that is to ``max_frames``): on the device for the whole run;
- while loading, on the host (:func:`thne.train.data.load_dataset`): each split's padded
  arrays as they are filled, clip by clip from the feature files. On a GPU each array goes to
  the device as soon as it is filled, so the host holds one at a time, at most the train
  split's acoustic array; on the CPU the arrays are the tensors and stay. Beside them: the
  token arrays as stored (5 bytes a token), one clip's rows, and the run fingerprint's
  64 MiB block;
- before clips were read one at a time (the loader up to this change, kept in
  tests/test_split_loading.py as the reference): every clip's raw feature rows (float32) for
  the whole load, and, while a split's array of one modality was padded, its clips
  standardised and capped in a list beside it; then the fingerprint's copy of the largest
  tensor's bytes. Without statistics files the train clips' statistics were fitted on one
  stacked float64 array of them, and its deviations from the mean, beside the raw rows; now
  they are fitted a clip at a time (thne/features/streamed_fit.py);
- on the device: the weights, their gradients and Adam's two moments (4 x 4 bytes per
  parameter, float32), and one batch's activations (not computed here: benchmarks/
  train_speed.py measures the peak on a GPU).

The splits' bytes come from tensors built by the real ``split_tensors`` for a sample of
synthetic clips, scaled to the split's clip count (each clip takes the same bytes once padded);
tests/test_memory_figures.py checks those byte counts and the peaks. Parameter counts come from
the real model with randomly initialised encoders of bert-base and MiniLM size (nothing
downloaded).

``--measure`` writes a synthetic set of the shape (manifest, text, audio and visual files and
statistics files; MOSI's is 0.5 GB, MOSEI's 5.3 GB, under benchmarks/out/memory/) and loads it
in fresh child processes, the loader before this change and now, with and without the
statistics files, on the CPU and with the "meta" device standing in for a GPU (a move to it
frees the host array as a move to a GPU does). Each child prints the peak resident memory of
the load above what it held before it (VmHWM, reset after the imports: getrusage's maxrss
would count the imports' passing peak, and a child inherits its parent's maxrss through exec),
the whole process's peak, and the load's wall and CPU time. A run the model puts near the
memory free is skipped. Measured peaks sit above the model's: HDF5 keeps about 6 KB for each
clip opened until its file is closed (0.3 GiB over MOSEI's two files), beside the allocator's
own slack.

    python benchmarks/memory.py
    python benchmarks/memory.py --measure mosi
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GiB = 2**30
MiB = 2**20
SAMPLE = 64  # clips built for real per split; the rest is scaled from them
SPLITS = ("train", "valid", "test")
FINGERPRINT_BLOCK = 64 * MiB  # thne.train.loop._hash_tensor's block of rows
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "out" / "memory"


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


def mean_rows(shape: Shape, hz: float, capped: bool) -> float:
    """Mean rows of a clip at ``hz`` (seconds uniform over ``shape.seconds``), at most
    ``max_frames`` when ``capped``."""
    a, b = shape.seconds
    cut = shape.max_frames / hz  # seconds at which a clip reaches the cap
    if not capped or cut >= b:
        return hz * (a + b) / 2
    if cut <= a:
        return float(shape.max_frames)
    return (hz * (cut**2 - a**2) / 2 + shape.max_frames * (b - cut)) / (b - a)


def modality_bytes(shape: Shape) -> dict[str, dict[str, float]]:
    """Per clip and modality: mean raw rows, rows standardised and capped, padded steps."""
    out = {}
    for name, dim, hz in (
        ("visual", shape.visual_dim, shape.visual_hz),
        ("acoustic", shape.acoustic_dim, shape.acoustic_hz),
    ):
        out[name] = {
            "raw": 4 * dim * mean_rows(shape, hz, capped=False),
            "capped": 4 * dim * mean_rows(shape, hz, capped=True),
            "padded": 4 * dim * shape.max_frames,
        }
    return out


def host_peak_before(shape: Shape, stats_files: bool = True) -> dict[str, float]:
    """Host bytes of the loader before clips were read one at a time, at its peak, by part.

    Every clip's raw rows and the token arrays were held through the load. Each split's
    visual, then acoustic array was padded from a list of its clips standardised and capped,
    beside the splits done (and, for the acoustic one, the split's visual array). Then the
    fingerprint copied each tensor's bytes whole, the largest being the train acoustic array;
    by then the raw rows were freed, but glibc's allocator had not given their memory back
    (measured: ``--measure``; ``malloc_trim`` returns it). Without statistics files, fitting
    the acoustic ones held a stacked float64 copy of the train clips' rows and its deviations
    from the mean (2 x 2 x their float32 bytes) beside the raw rows."""
    per = modality_bytes(shape)
    n = sum(shape.clips.values())
    held = {"raw rows": n * raw_bytes_per_clip(shape), "token arrays": n * 5 * shape.text_len}
    candidates = []
    done = 0.0
    for split in SPLITS:
        k = shape.clips[split]
        visual = k * per["visual"]["padded"]
        candidates.append(
            {
                **held,
                "splits padded before": done,
                f"{split} visual array": visual,
                f"{split} acoustic rows standardised": k * per["acoustic"]["capped"],
                f"{split} acoustic array": k * per["acoustic"]["padded"],
            }
        )
        done += k * padded_bytes_per_clip(shape)
    candidates.append(
        {
            "raw rows and tokens, freed, not given back": sum(held.values()),
            "splits' tensors": done,
            "fingerprint's copy of train acoustic": shape.clips["train"]
            * per["acoustic"]["padded"],
        }
    )
    if not stats_files:
        fit = 4 * shape.clips["train"] * per["acoustic"]["raw"]
        candidates.append({**held, "fitting acoustic statistics (2 float64 arrays)": fit})
    return max(candidates, key=lambda c: sum(c.values()))


def host_peak_after(shape: Shape, gpu: bool) -> dict[str, float]:
    """Host bytes of :func:`thne.train.data.load_dataset` and the run fingerprint at their
    peak, by part: on the CPU every split's padded arrays stay, on a GPU the largest array
    (train acoustic) is the most held at once. With or without statistics files alike: the
    streamed fit holds one clip's rows."""
    per = modality_bytes(shape)
    n = sum(shape.clips.values())
    tokens = n * 5 * shape.text_len
    longest = (
        4
        * longest_seconds(shape)
        * (shape.visual_hz * shape.visual_dim + shape.acoustic_hz * shape.acoustic_dim)
    )
    if gpu:
        array = shape.clips["train"] * per["acoustic"]["padded"]
        return {"token arrays": tokens, "train acoustic array": array, "one clip's rows": longest}
    splits = n * padded_bytes_per_clip(shape)
    return {"splits' tensors": splits, "fingerprint block": FINGERPRINT_BLOCK}


def gib(parts: dict[str, float]) -> str:
    """``total GiB (part a + part b ...)``."""
    return (
        f"{sum(parts.values()) / GiB:.2f} GiB ("
        + " + ".join(f"{k} {v / GiB:.2f}" for k, v in parts.items())
        + ")"
    )


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


def write_synthetic_set(shape: Shape, root: Path, seed: int = 0) -> Path:
    """A dataset of ``shape`` as the workflow writes it: manifest, text.h5, audio.h5,
    visual.h5 and both statistics files, one clip at a time (MOSEI's rows never sit in
    memory). The first clip of each split is long enough to reach max_frames. Kept in
    ``root`` and reused while its ``done`` file is there."""
    import h5py

    from thne.data.clips import Clip
    from thne.data.manifest import write_manifest
    from thne.features.streamed_fit import fit_stats

    if (root / "done").exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    clips = []
    for split in SPLITS:
        seconds = rng.uniform(*shape.seconds, shape.clips[split])
        seconds[0] = longest_seconds(shape)
        clips += [
            Clip(f"{split}{i:05d}", f"{split}{i:05d}", 0.0, float(s), split, 0.0, "", "x.mp4")
            for i, s in enumerate(seconds)
        ]
    write_manifest(root / "manifest.tsv", clips)
    files = {
        "visual": (shape.visual_dim, shape.visual_hz),
        "audio": (shape.acoustic_dim, shape.acoustic_hz),
    }
    for name, (dim, hz) in files.items():
        with h5py.File(root / f"{name}.h5", "w") as h5:
            names = [f"{name}{j}" for j in range(dim)]
            h5.attrs["feature_names"] = np.array(names, dtype=h5py.string_dtype())
            h5.attrs["extractor"] = "synthetic"
            h5.attrs["config"] = "{}"
            h5.attrs["excluded"] = "[]"
            for clip in clips:
                n = int(clip.end * hz)
                group = h5.create_group(clip.clip_id)
                group["features"] = rng.standard_normal((n, dim), dtype=np.float32)
                group["timestamps"] = np.arange(n, dtype=np.float32) / hz
        fit_stats(root / "manifest.tsv", root / f"{name}.h5", root / f"{name}.stats.json")
    lengths = rng.integers(10, shape.text_len + 1, len(clips))
    mask = (np.arange(shape.text_len)[None, :] < lengths[:, None]).astype(np.int8)
    with h5py.File(root / "text.h5", "w") as h5:
        h5["clip_ids"] = np.array([c.clip_id for c in clips], dtype=h5py.string_dtype())
        h5["input_ids"] = (rng.integers(1000, 30000, mask.shape) * mask).astype(np.int32)
        h5["attention_mask"] = mask
        h5.attrs["tokenizer"] = "synthetic"
        h5.attrs["max_length"] = shape.text_len
    (root / "done").touch()
    return root


def _status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def child(mode: str, root: Path, stats_files: bool) -> dict:
    """Load ``root``'s set as ``mode`` does, in this process: the peak resident memory while
    loading, and what the process held before it."""
    sys.path.insert(0, str(REPO / "tests"))
    import gc

    import torch
    from test_split_loading import reference_fingerprint, reference_load

    from thne.train.config import TrainConfig
    from thne.train.data import load_dataset
    from thne.train.loop import run_fingerprint

    files = [root / n for n in ("manifest.tsv", "text.h5", "audio.h5", "visual.h5")]
    stats = {"visual_stats": root / "visual.stats.json", "audio_stats": root / "audio.stats.json"}
    kwargs = {"max_frames": 500, **(stats if stats_files else {})}
    gc.collect()
    # The peak from here: getrusage's maxrss would include the imports' passing peak, and a
    # child started from a big parent inherits the parent's maxrss through exec. The reset
    # comes first: read before it, the resident size could exceed the peak counted after it
    # (the kernel trims pages in between; seen once, by 24 KiB).
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_bytes("VmRSS")
    base = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter()
    if mode == "before":
        # As train_run did: the fingerprint on the host tensors, then the move.
        data = reference_load(*files, **kwargs)
        reference_fingerprint(TrainConfig(), data)
    elif mode == "after-cpu":
        data = load_dataset(*files, **kwargs)
        run_fingerprint(TrainConfig(), data)
    else:  # after-gpu: "meta" frees each host array on the move as a GPU does; no fingerprint
        data = load_dataset(*files, **kwargs, device="meta")
    wall = time.perf_counter() - wall
    end = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (end.ru_utime - base.ru_utime) + (end.ru_stime - base.ru_stime)
    assert all(len(t) for t in data.splits.values()) and torch.is_tensor(data.splits["train"].label)
    return {"before": before, "peak": _status_bytes("VmHWM"), "wall_s": wall, "cpu_s": cpu}


def _available() -> int:
    """MemAvailable of /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise KeyError("MemAvailable")


def measure(name: str) -> None:
    shape = SHAPES[name]
    root = write_synthetic_set(shape, OUT / name)
    print(
        f"\n{name}: loading the synthetic set in {root}, each in a fresh process; the "
        "loading's peak above what the process held before it (its imports: torch, thne's "
        "training code, the tests' reference loader)"
    )
    runs = [
        ("before", True, host_peak_before(shape)),
        ("after-cpu", True, host_peak_after(shape, gpu=False)),
        ("after-gpu", True, host_peak_after(shape, gpu=True)),
        ("before", False, host_peak_before(shape, stats_files=False)),
        ("after-cpu", False, host_peak_after(shape, gpu=False)),
    ]
    for mode, stats_files, model in runs:
        # Leave the machine's other work room: a run the model puts near what is free is
        # skipped (the old loader's peaks sat up to 15 % above the model's on MOSI).
        need, free = 1.25 * sum(model.values()) + 2 * GiB, _available()
        if need > free:
            print(
                f"  {mode:9s} {'stats files' if stats_files else 'no stats   '}: skipped, "
                f"the model's peak needs about {need / GiB:.1f} GiB, {free / GiB:.1f} GiB free"
            )
            continue
        cmd = [sys.executable, __file__, "--child", mode, str(root)]
        cmd += [] if stats_files else ["--no-stats"]
        got = json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)
        print(
            f"  {mode:9s} {'stats files' if stats_files else 'no stats   '}: loading's peak "
            f"{(got['peak'] - got['before']) / GiB:5.2f} GiB (model "
            f"{sum(model.values()) / GiB:5.2f}), process {got['peak'] / GiB:5.2f} GiB; "
            f"wall {got['wall_s']:5.1f} s, CPU {got['cpu_s']:5.1f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", choices=sorted(SHAPES), help="measure loading this shape")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROOT"), help=argparse.SUPPRESS)
    parser.add_argument("--no-stats", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), not args.no_stats)))
        return
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
        sample_raw = sum(x.nbytes for x in visual + acoustic) / SAMPLE
        print(
            f"\n{name}: {n} clips; padded tensors {per_clip} B/clip (built: {measured:.0f}), "
            f"raw rows {raw_bytes_per_clip(shape):.0f} B/clip on average "
            f"(sample of {SAMPLE}: {sample_raw:.0f})"
        )
        print(f"  splits' tensors: {splits / GiB:6.2f} GiB (device, whole run)")
        print("  host at the peak of loading:")
        print(f"    before, every clip's rows read first: {gib(host_peak_before(shape))}")
        print(f"      without statistics files: {gib(host_peak_before(shape, False))}")
        print(f"    now, on the CPU: {gib(host_peak_after(shape, gpu=False))}")
        print(f"    now, on a GPU:   {gib(host_peak_after(shape, gpu=True))}")
        print("    (now without statistics files: the same; after the move to the GPU the host")
        print("    keeps none of them)")
        for encoder in ENCODERS:
            params = model_parameters(encoder, shape, hidden[name])
            state = 16 * params
            print(
                f"  {encoder:9s}: {params / 1e6:6.1f} M parameters, weights + gradients + Adam "
                f"{state / GiB:.2f} GiB; GPU without activations {(splits + state) / GiB:.2f} GiB"
            )
    if args.measure:
        measure(args.measure)


if __name__ == "__main__":
    main()
