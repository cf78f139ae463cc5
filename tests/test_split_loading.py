"""load_dataset reads clips one at a time, yet builds the tensors that reading every clip
first did, bit for bit; thne predict's split_tensors builds the same tensors as before.

The reference below is the loader as it was (every clip's rows read with read_h5, statistics
by Normaliser.fit, each split padded from the rows held), kept here to compare against."""

import dataclasses
import gc
import hashlib
import json
import weakref

import h5py
import numpy as np
import pytest
import torch
from test_train import make_dataset

from thne.data.manifest import SPLITS, read_manifest, write_manifest
from thne.features.normalise import Normaliser
from thne.features.reader import FeatureReader
from thne.features.store import extract_to_h5, read_h5
from thne.features.streamed_fit import fit_stats
from thne.media import MediaError
from thne.train import data as data_module
from thne.train.config import TrainConfig
from thne.train.data import SplitTensors, fit_length, load_dataset, split_tensors
from thne.train.loop import _hash_tensor, run_fingerprint


def reference_pad(seqs, dim):
    lengths = [max(1, s.shape[0]) for s in seqs]
    out = np.zeros((len(seqs), max(lengths, default=1), dim), dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return torch.from_numpy(out), torch.tensor(lengths, dtype=torch.int64)


def reference_split(ids, texts, labels, input_ids, mask, visual, acoustic, v_norm, a_norm, cap):
    v, vl = reference_pad([fit_length(v_norm(x), cap) for x in visual], len(v_norm.mean))
    a, al = reference_pad([fit_length(a_norm(x), cap) for x in acoustic], len(a_norm.mean))
    return SplitTensors(
        clip_ids=list(ids),
        texts=list(texts),
        label=torch.tensor(list(labels), dtype=torch.float32),
        input_ids=torch.from_numpy(np.asarray(input_ids).astype(np.int64)),
        attention_mask=torch.from_numpy(np.asarray(mask).astype(np.int64)),
        visual=v,
        visual_len=vl,
        acoustic=a,
        acoustic_len=al,
    )


def reference_load(
    manifest, text_h5, audio_h5, visual_h5, *, max_frames=500, visual_stats=None, audio_stats=None
):
    clips = read_manifest(manifest)
    ids = [c.clip_id for c in clips]
    audio = read_h5(audio_h5, ids)
    visual = read_h5(visual_h5, ids)
    with h5py.File(text_h5, "r", locking=False) as h5:
        row = {
            c.decode() if isinstance(c, bytes) else str(c): i
            for i, c in enumerate(h5["clip_ids"][()])
        }
        input_ids, mask = h5["input_ids"][()], h5["attention_mask"][()]
        text_attrs = {k: data_module._plain(v) for k, v in h5.attrs.items()}
    reasons = {}
    for name, store in (("audio", audio), ("visual", visual)):
        recorded = {e["clip_id"]: e["reason"] for e in store.excluded}
        for c in ids:
            if c not in store.features:
                reasons.setdefault(c, f"no {name} features: {recorded.get(c, 'absent from file')}")
    for c in ids:
        if c not in row:
            reasons.setdefault(c, "no tokens in text.h5")
    usable = [c for c in clips if c.clip_id not in reasons]
    train = [c for c in usable if c.split == "train"]
    if not train:
        raise ValueError(f"{manifest}: no usable train clips")
    norms = []
    for store, stats in ((visual, visual_stats), (audio, audio_stats)):
        rows = [store.features[c.clip_id] for c in train]
        norms.append(
            Normaliser.load(stats, store.feature_names)
            if stats
            else Normaliser.fit(rows, store.feature_names)
        )
    splits = {}
    for s in SPLITS:
        cs = [c for c in usable if c.split == s]
        rows = [row[c.clip_id] for c in cs]
        splits[s] = reference_split(
            [c.clip_id for c in cs],
            [c.text for c in cs],
            [c.label for c in cs],
            input_ids[rows],
            mask[rows],
            [visual.features[c.clip_id] for c in cs],
            [audio.features[c.clip_id] for c in cs],
            *norms,
            max_frames,
        )
    for s, t in splits.items():
        if len(t) == 0:
            raise ValueError(f"{manifest}: no usable clips in split {s}")
    provenance = {
        "visual": data_module._feature_provenance(visual),
        "acoustic": data_module._feature_provenance(audio),
        "text": {
            "encoder": text_attrs.get("tokenizer"),
            "max_length": text_attrs.get("max_length"),
        },
        "max_frames": max_frames,
    }
    return data_module.Dataset(
        splits,
        *norms,
        visual.feature_names,
        audio.feature_names,
        [{"clip_id": c, "reason": r} for c, r in reasons.items()],
        provenance,
    )


def assert_same_split(got, want, where=""):
    for f in dataclasses.fields(SplitTensors):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, torch.Tensor):
            assert a.dtype == b.dtype and a.shape == b.shape, (where, f.name)
            assert a.numpy().tobytes() == b.numpy().tobytes(), (where, f.name)
        else:
            assert a == b, (where, f.name)


def assert_same_dataset(got, want):
    assert list(got.splits) == list(want.splits)
    for name in want.splits:
        assert_same_split(got.splits[name], want.splits[name], name)
    for norm in ("visual_norm", "acoustic_norm"):
        a, b = getattr(got, norm), getattr(want, norm)
        assert a.mean.tobytes() == b.mean.tobytes() and a.std.tobytes() == b.std.tobytes()
        assert a.presence == b.presence
    assert got.visual_names == want.visual_names and got.acoustic_names == want.acoustic_names
    assert got.dropped == want.dropped
    assert json.dumps(got.provenance, sort_keys=True) == json.dumps(want.provenance, sort_keys=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The training tests' dataset, and beside it files with every gap the loader handles:
    a visual file with a face_detected channel (frames without a face are zeros) and clips of
    3 to 40 frames, one clip excluded with its reason; an audio file missing a train clip
    (no reason recorded) and holding a clip of no frames; a text file missing a test clip."""
    root = make_dataset(tmp_path_factory.mktemp("split_loading"))
    clips = read_manifest(root / "manifest.tsv")
    rng = np.random.default_rng(7)

    def faces(clip):
        if clip.clip_id == "v0_1":
            raise MediaError(f"{clip.media}: cannot be decoded (test)")
        n = int(rng.integers(3, 41))
        x = rng.normal(size=(n, 5)).astype(np.float32) * 10.0 ** rng.integers(-3, 4, 5)
        x[:, 0] = rng.random(n) < 0.8
        x[x[:, 0] == 0] = 0.0
        return x, np.arange(n, dtype=np.float32) * (clip.end - clip.start) / n

    names = ["face_detected", "x1", "x2", "x3", "x4"]
    extract_to_h5(
        clips, root / "faces.h5", faces, feature_names=names, extractor="t", config={},
        on_bad_clip="exclude",
    )  # fmt: skip
    with h5py.File(root / "audio.h5") as src, h5py.File(root / "audio_gaps.h5", "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        for clip_id in src:
            if clip_id != "v1_4":
                src.copy(src[clip_id], dst, name=clip_id)
        del dst["v2_7/features"]
        dst.create_dataset("v2_7/features", data=np.zeros((0, 4), np.float32))
    with h5py.File(root / "text.h5") as src, h5py.File(root / "text_gaps.h5", "w") as dst:
        keep = [i for i, c in enumerate(src["clip_ids"][()]) if c not in (b"v3_10", "v3_10")]
        for key, value in src.items():
            dst.create_dataset(key, data=value[()][keep])
        for key, value in src.attrs.items():
            dst.attrs[key] = value
    for modality, h5 in (("visual", "faces.h5"), ("audio", "audio_gaps.h5")):
        fit_stats(root / "manifest.tsv", root / h5, root / f"{modality}.stats.json")
    return root


def paths(root, text="text.h5", audio="audio.h5", visual="visual.h5", manifest="manifest.tsv"):
    return [root / manifest, root / text, root / audio, root / visual]


def outcome(load, args, kwargs):
    """The dataset ``load`` builds, or the error it raises (type and message)."""
    try:
        return load(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - compared between the two loaders
        return (type(exc), str(exc))


CASES = {
    "as the training tests load it": ({}, {}),
    "clips over max_frames": ({}, {"max_frames": 8}),
    "excluded, absent, empty and untokenised clips": (
        {"text": "text_gaps.h5", "audio": "audio_gaps.h5", "visual": "faces.h5"},
        {"max_frames": 12},
    ),
    "statistics files": (
        {"text": "text_gaps.h5", "audio": "audio_gaps.h5", "visual": "faces.h5"},
        {"max_frames": 10, "visual_stats": "visual.stats.json", "audio_stats": "audio.stats.json"},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_same_tensors_as_reading_every_clip_first(files, case):
    names, kwargs = CASES[case]
    kwargs = {k: files / v if k.endswith("stats") else v for k, v in kwargs.items()}
    args = paths(files, **names)
    got, want = load_dataset(*args, **kwargs), reference_load(*args, **kwargs)
    assert_same_dataset(got, want)
    if "gaps" in names.get("text", ""):
        assert [d["clip_id"] for d in want.dropped] == ["v1_4", "v0_1", "v3_10"]
        assert want.visual_norm.presence == 0


def rewrite_manifest(root, name, keep):
    write_manifest(root / name, [c for c in read_manifest(root / "manifest.tsv") if keep(c)])
    return name


def test_same_errors(files):
    """Each error names the file, or the split, as before."""
    no_train = rewrite_manifest(files, "no_train.tsv", lambda c: c.split != "train")
    no_valid = rewrite_manifest(files, "no_valid.tsv", lambda c: c.split != "valid")
    cases = [
        (paths(files, manifest=no_train), {}, "no usable train clips"),
        (paths(files, manifest=no_valid), {}, "no usable clips in split valid"),
        (paths(files), {"visual_stats": files / "audio.stats.json"}, "other features"),
        (paths(files, audio="absent.h5"), {}, "absent.h5"),
    ]
    for args, kwargs, message in cases:
        got = outcome(load_dataset, args, kwargs)
        assert got == outcome(reference_load, args, kwargs)
        assert isinstance(got, tuple) and message in got[1], got


def test_predict_builds_the_same_tensors(files):
    """thne predict's split_tensors, on rows held in memory: clips over the cap, of no frames."""
    visual = list(read_h5(files / "faces.h5").features.values())[:8]
    acoustic = list(read_h5(files / "audio_gaps.h5").features.values())[:8]
    v_norm = Normaliser.fit(visual, ["face_detected", "x1", "x2", "x3", "x4"])
    a_norm = Normaliser.fit(acoustic, [f"a{i}" for i in range(4)])
    acoustic[3] = acoustic[3][:0]
    ids = np.arange(8 * 12).reshape(8, 12)
    mask = (ids % 12 < 7).astype(np.int8)
    args = ([f"c{i}" for i in range(8)], list("abcdefgh"), np.linspace(-3, 3, 8), ids, mask)
    for cap in (500, 9):
        got = split_tensors(
            *args, visual, acoustic, visual_norm=v_norm, acoustic_norm=a_norm, max_frames=cap
        )
        assert_same_split(got, reference_split(*args, visual, acoustic, v_norm, a_norm, cap))


def test_one_clips_rows_and_one_padded_array_at_a_time(files, monkeypatch):
    """While loading, at most one clip's raw rows are alive when the next is read, and each
    padded array leaves the host for the device before the next is built (the "meta" device
    stands in for a GPU)."""
    read, padded = FeatureReader.read, data_module.padded_features
    raw, alive_raw, arrays, alive_arrays = [], [], [], []

    def tracked_read(self, clip_id):
        alive_raw.append(sum(r() is not None for r in raw))
        x = read(self, clip_id)
        raw.append(weakref.ref(x))
        return x

    def tracked_padded(*args, **kwargs):
        gc.collect()
        alive_arrays.append(sum(r() is not None for r in arrays))
        x, lengths = padded(*args, **kwargs)
        arrays.append(weakref.ref(x))
        return x, lengths

    monkeypatch.setattr(FeatureReader, "read", tracked_read)
    monkeypatch.setattr(data_module, "padded_features", tracked_padded)
    data = load_dataset(*paths(files, visual="faces.h5"), device="meta")
    assert max(alive_raw) <= 1
    assert alive_arrays == [0] * 6  # 3 splits x 2 modalities
    tensors = [t for s in data.splits.values() for t in vars(s).values() if torch.is_tensor(t)]
    assert {t.device.type for t in tensors} == {"meta"}


def reference_fingerprint(cfg, data):
    """run_fingerprint as it was: each tensor's whole bytes at once."""
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "checkpoint_every_s"}
    digest = hashlib.blake2b(json.dumps(config, sort_keys=True).encode())
    digest.update(json.dumps([data.visual_names, data.acoustic_names]).encode())
    for name in sorted(data.splits):
        split = data.splits[name]
        digest.update(name.encode())
        digest.update("\n".join(split.clip_ids).encode())
        for value in vars(split).values():
            if isinstance(value, torch.Tensor):
                digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def test_fingerprint_is_unchanged(files):
    """Checkpoints written before loading changed still resume: the run fingerprint hashes the
    tensors a block of rows at a time, to the same digest as their whole bytes."""
    data = load_dataset(*paths(files))
    cfg = TrainConfig()
    assert run_fingerprint(cfg, data) == reference_fingerprint(cfg, data)
    tensor = torch.arange(5 * 7 * 3, dtype=torch.float32).reshape(5, 7, 3).transpose(0, 1)
    for value in (tensor, tensor[:0], torch.tensor(2.5), torch.arange(11)):
        whole, blocks = hashlib.blake2b(), hashlib.blake2b()
        whole.update(value.contiguous().numpy().tobytes())
        _hash_tensor(blocks, value, chunk_bytes=40)
        assert blocks.hexdigest() == whole.hexdigest()
