"""Feature pickles of published baselines as a dataset source.

- ``mmim``: the pickles MISA and MMIM train on, a folder with ``train.pkl``, ``dev.pkl`` and
  ``test.pkl``, each a list of ``((word_ids [L], visual [L, dv], acoustic [L, da], words [L]),
  label [[y]], segment_id)`` with segment ids ``<video_id>[<n>]``. Features are word-aligned,
  one row per word; unaligned entries (which MMIM's loader also reads) add the visual and
  acoustic lengths after the words. The split is the file's.
- ``mmsa_pkl``: MMSA's ``aligned_50.pkl`` / ``unaligned_50.pkl``, a dict with ``train``,
  ``valid`` and ``test``, each a dict of arrays: ``id`` (``<video_id>$_$<clip>``),
  ``raw_text``, ``audio`` [N, La, da], ``vision`` [N, Lv, dv], ``regression_labels``, and in
  the unaligned files ``audio_lengths`` and ``vision_lengths``. The split is the key's.
  Padding beyond a clip's length is not a frame: lengths come from ``*_lengths``, else (the
  aligned files, aligned to BERT tokens) from the ``text_bert`` attention mask.

Neither format carries times, so a frame's timestamp is its position in the clip and a
clip's interval in the manifest runs from 0 to its longest modality's number of rows (the
feature files' config says so).
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import os
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from thne.data.clips import Clip, IngestError
from thne.data.feature_import import FeatureSet, ImportedClip

MMIM_FILES: dict[str, str] = {"train": "train.pkl", "valid": "dev.pkl", "test": "test.pkl"}
MMSA_SPLITS: tuple[str, ...] = ("train", "valid", "test")
MMSA_ID_SEPARATOR = "$_$"
PAUSE = "sp"

_MMIM_SHAPE = "a list of ((word_ids, visual, acoustic, words[, v_len, a_len]), label, segment_id)"
_MMSA_SHAPE = (
    "a dict with train, valid and test, each a dict of arrays id, raw_text, audio, vision "
    "and regression_labels"
)


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as Python 3 pickles of bytes (protocol 2) call it, and nothing more."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return text.encode("latin1")


def _numpy_global(name: str) -> Callable[[], object]:
    return lambda: getattr(np, name)


def _numpy_core(submodule: str, name: str) -> Callable[[], object]:
    # numpy 2 moved numpy.core to numpy._core; either name of a pickle reaches the installed one.
    core = "numpy._core" if np.lib.NumpyVersion(np.__version__) >= "2.0.0" else "numpy.core"
    return lambda: getattr(importlib.import_module(f"{core}.{submodule}"), name)


# Everything the feature-set pickles of these formats hold besides the containers and scalars
# that pickle builds itself: numpy arrays, their dtypes and numpy scalars (as numpy 1.x and
# 2.x name them), sets, and the bytes of protocol-2 pickles. Nothing here runs code the pickle
# chooses: each is a constructor of plain data.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], object]] = {
    **{
        (module, name): _numpy_core("multiarray", name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    },
    # Protocol 5 (pickle.HIGHEST_PROTOCOL) writes arrays as a buffer and this constructor.
    **{
        (module, "_frombuffer"): _numpy_core("numeric", "_frombuffer")
        for module in ("numpy.core.numeric", "numpy._core.numeric")
    },
    ("numpy", "ndarray"): _numpy_global("ndarray"),
    ("numpy", "dtype"): _numpy_global("dtype"),
    # Python 2 pickles name the builtins module __builtin__.
    **{
        (module, name): (lambda name=name: getattr(builtins, name))
        for module in ("builtins", "__builtin__")
        for name in ("set", "frozenset", "bytearray", "complex", "slice", "range")
    },
    ("_codecs", "encode"): lambda: _latin1_bytes,
}


class FeatureSetUnpickler(pickle.Unpickler):
    """Reads a feature-set pickle, refusing every global outside :data:`ALLOWED_GLOBALS`.

    ``pickle.load`` imports and calls whatever a pickle names, so a pickle handed over by
    anyone could run any command; this one never imports a module the pickle asks for.
    """

    def __init__(self, file, path: Path) -> None:
        # Older pickles of these sets were written by Python 2 with numpy arrays inside.
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str) -> object:
        found = ALLOWED_GLOBALS.get((module, name))
        if found is not None:
            return found()
        # Only asks whether the top-level package exists: nothing is imported.
        top = module.partition(".")[0]
        if not top.isidentifier() or importlib.util.find_spec(top) is None:
            raise IngestError(
                f"{self.path} asks to load {module}.{name}, from a module that is not "
                "installed and that no feature set needs; refusing to load it"
            )
        raise IngestError(
            f"{self.path} asks to load {module}.{name}, which no feature set holds; "
            "refusing to load it, because unpickling it would run code"
        )


def _load(path: Path) -> object:
    if not path.is_file():
        raise IngestError(f"{path}: the pickle does not exist")
    try:
        with open(path, "rb") as f:
            return FeatureSetUnpickler(f, path).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise IngestError(f"{path}: not a readable pickle ({exc})") from exc


def _frames(values, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(values, dtype=np.float32)
    if length is not None:
        feats = feats[:length]
    return feats, np.arange(len(feats), dtype=np.float32)


def _mmim_feature_set(folder: Path, dv: int, da: int, aligned: bool) -> FeatureSet:
    kind = "word-aligned" if aligned else "unaligned"
    return FeatureSet(
        description=f"acoustic {da} + visual {dv}, {kind}, MMIM pickles",
        names={
            "audio": [f"acoustic_{i}" for i in range(da)],
            "visual": [f"visual_{i}" for i in range(dv)],
        },
        extractor={"audio": "MMIM pickle acoustic", "visual": "MMIM pickle visual"},
        config={
            "source": folder.name,
            "timestamps": "row position",
            "rows": "one per word" if aligned else kind,
        },
    )


def _mmim_entry(path: Path, index: int, entry) -> tuple:
    """(segment id, label, words, visual, acoustic) of one entry. MMIM's loader also takes
    unaligned entries, whose features tuple ends with the visual and acoustic lengths:
    ``(word_ids, visual [Lv, dv], acoustic [La, da], words, v_len, a_len)``; MOSEI labels
    may carry 7 columns, sentiment first."""
    try:
        features, label, segment = entry
        word_ids, visual, acoustic, words, *lengths = features
        visual, acoustic = np.asarray(visual), np.asarray(acoustic)
        label = float(np.asarray(label, dtype=np.float64).reshape(-1)[0])
        if lengths:
            v_len, a_len = (int(np.asarray(n).reshape(-1)[0]) for n in lengths)
    except (TypeError, ValueError, IndexError) as exc:
        raise IngestError(f"{path}: entry {index} is not {_MMIM_SHAPE} ({exc})") from exc
    if visual.ndim != 2 or acoustic.ndim != 2:
        raise IngestError(
            f"{path}: entry {index} ({segment}): visual {visual.shape} and acoustic "
            f"{acoustic.shape} are not [L, dv] and [L, da]"
        )
    if not lengths and not len(visual) == len(acoustic) == len(words):
        raise IngestError(
            f"{path}: entry {index} ({segment}): visual {visual.shape}, acoustic "
            f"{acoustic.shape} and {len(words)} words: word-aligned rows need one per word"
        )
    if lengths:
        if not (0 <= v_len <= len(visual) and 0 <= a_len <= len(acoustic)):
            raise IngestError(
                f"{path}: entry {index} ({segment}): lengths {v_len}, {a_len} do not fit "
                f"visual {visual.shape} and acoustic {acoustic.shape}"
            )
        # Padding beyond a clip's length is not a frame.
        visual, acoustic = visual[:v_len], acoustic[:a_len]
    return str(segment), label, [str(w) for w in words], visual, acoustic, not lengths


def read_mmim(folder: str | os.PathLike) -> tuple[FeatureSet, int, Iterator[ImportedClip]]:
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(
            f"{folder}: not a folder (the mmim layout is a folder of train.pkl, "
            "dev.pkl and test.pkl)"
        )
    absent = [name for name in MMIM_FILES.values() if not (folder / name).is_file()]
    if absent:
        raise IngestError(
            f"{folder}: no {', '.join(absent)} here (an MMIM/MISA folder holds "
            f"{', '.join(MMIM_FILES.values())})"
        )
    entries = []
    for split, name in MMIM_FILES.items():
        data = _load(folder / name)
        if not isinstance(data, list | tuple):
            raise IngestError(
                f"{folder / name}: not an MMIM pickle: expected {_MMIM_SHAPE}, "
                f"found a {type(data).__name__}"
            )
        entries += [(split, *_mmim_entry(folder / name, i, e)) for i, e in enumerate(data)]
    if not entries:
        raise IngestError(f"{folder}: the pickles hold no clips")
    dv, da = entries[0][4].shape[1], entries[0][5].shape[1]
    aligned = {e[6] for e in entries}
    if len(aligned) > 1:
        raise IngestError(f"{folder}: the pickles mix word-aligned and unaligned entries")
    for split, segment, *_, visual, acoustic, _aligned in entries:
        if visual.shape[1] != dv or acoustic.shape[1] != da:
            raise IngestError(
                f"{folder / MMIM_FILES[split]}: clip {segment} has {visual.shape[1]} visual and "
                f"{acoustic.shape[1]} acoustic columns, the first clip {dv} and {da}"
            )

    def items() -> Iterator[ImportedClip]:
        for split, segment, label, words, visual, acoustic, _aligned in entries:
            keep = [i for i, w in enumerate(words) if w != PAUSE]
            clip = Clip(
                clip_id=segment,
                video_id=segment.rsplit("[", 1)[0],
                start=0.0,
                end=float(max(len(words), len(visual), len(acoustic))),
                split=split,
                label=label,
                text=" ".join(words[i] for i in keep),
                media="",
            )
            yield ImportedClip(clip, audio=_frames(acoustic), visual=_frames(visual))

    return _mmim_feature_set(folder, dv, da, aligned.pop()), len(entries), items()


def _lengths(path: Path, split: str, part: dict, key: str, n: int, width: int) -> np.ndarray:
    if f"{key}_lengths" in part:
        lengths = np.asarray(part[f"{key}_lengths"]).astype(int).reshape(-1)
    elif "text_bert" in part:
        # Aligned files: features follow the BERT tokens, whose attention mask is row 1.
        lengths = np.asarray(part["text_bert"])[:, 1].sum(axis=1).astype(int)
    else:
        raise IngestError(
            f"{path}: {split} has neither {key}_lengths nor text_bert, so the padding of "
            f"{key} cannot be told from frames"
        )
    if len(lengths) != n or (lengths < 0).any() or (lengths > width).any():
        raise IngestError(f"{path}: {split}: {key} lengths do not fit the {key} array")
    return lengths


def read_mmsa_pkl(path: str | os.PathLike) -> tuple[FeatureSet, int, Iterator[ImportedClip]]:
    path = Path(path)
    data = _load(path)
    if not isinstance(data, dict) or set(MMSA_SPLITS) - set(data):
        raise IngestError(f"{path}: not an MMSA pickle: expected {_MMSA_SHAPE}")
    parts = []
    for split in MMSA_SPLITS:
        part = data[split]
        need = {"id", "raw_text", "audio", "vision", "regression_labels"}
        if not isinstance(part, dict) or need - set(part):
            raise IngestError(
                f"{path}: not an MMSA pickle: {split} lacks "
                f"{sorted(need - set(part)) if isinstance(part, dict) else 'its dict'}"
            )
        audio, vision = np.asarray(part["audio"]), np.asarray(part["vision"])
        n = len(part["id"])
        if audio.ndim != 3 or vision.ndim != 3 or len(audio) != n or len(vision) != n:
            raise IngestError(
                f"{path}: {split}: audio {audio.shape} and vision {vision.shape} are not "
                f"[{n}, L, d]"
            )
        a_len = _lengths(path, split, part, "audio", n, audio.shape[1])
        v_len = _lengths(path, split, part, "vision", n, vision.shape[1])
        parts.append((split, part, audio, vision, a_len, v_len))
    da, dv = parts[0][2].shape[2], parts[0][3].shape[2]
    for split, _, audio, vision, *_ in parts:
        if audio.shape[2] != da or vision.shape[2] != dv:
            raise IngestError(f"{path}: {split} has other feature widths than train")
    aligned = not any("audio_lengths" in p[1] for p in parts)
    kind = "word-aligned" if aligned else "unaligned"
    features = FeatureSet(
        description=f"acoustic {da} + visual {dv}, {kind}, MMSA pickle {path.name}",
        names={
            "audio": [f"acoustic_{i}" for i in range(da)],
            "visual": [f"visual_{i}" for i in range(dv)],
        },
        extractor={
            "audio": f"MMSA pickle {path.name} audio",
            "visual": f"MMSA pickle {path.name} vision",
        },
        config={"source": path.name, "timestamps": "frame position", "rows": kind},
    )

    def items() -> Iterator[ImportedClip]:
        for split, part, audio, vision, a_len, v_len in parts:
            labels = np.asarray(part["regression_labels"], dtype=np.float64).reshape(-1)
            for i, raw_id in enumerate(part["id"]):
                raw_id = str(raw_id)
                video, sep, seg = raw_id.rpartition(MMSA_ID_SEPARATOR)
                if not sep:
                    video, _, seg = raw_id.rpartition("_")
                clip = Clip(
                    clip_id=f"{video}_{seg}",
                    video_id=video,
                    start=0.0,
                    end=float(max(a_len[i], v_len[i])),
                    split=split,
                    label=float(labels[i]),
                    text=str(part["raw_text"][i]),
                    media="",
                )
                yield ImportedClip(
                    clip, audio=_frames(audio[i], a_len[i]), visual=_frames(vision[i], v_len[i])
                )

    return features, sum(len(p[1]["id"]) for p in parts), items()


def read_pickles(
    layout: str, path: str | os.PathLike
) -> tuple[FeatureSet, int, Iterator[ImportedClip]]:
    if layout == "mmim":
        return read_mmim(path)
    if layout == "mmsa_pkl":
        return read_mmsa_pkl(path)
    raise IngestError(f"unknown pickle layout {layout!r}; known: mmim, mmsa_pkl")
