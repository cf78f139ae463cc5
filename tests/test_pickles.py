"""MMIM/MISA and MMSA feature pickles as a source: the formats, and bad pickles."""

from __future__ import annotations

import json
import pickle
import re

import h5py
import numpy as np
import pandas as pd
import pytest
from feature_sets import mmim_entries, write_mmim, write_mmsa_pkl
from payload import RunsCode

from conftest import need
from thne.cli import build_parser
from thne.data.ingest import IngestError
from thne.data.pickles import FeatureSetUnpickler, read_pickles


def main(argv):
    """The stage as `thne` runs it, with its exceptions (`thne` itself prints them)."""
    args = build_parser().parse_args(argv)
    args.func(args)


def run_import(layout, source, out, on_bad_clip="fail"):
    main(
        [
            "import-features",
            *("--layout", layout, "--dataset", "mosi", "--pickles", str(source)),
            *("--manifest", str(out / "manifest.tsv"), "--excluded", str(out / "excluded.tsv")),
            *("--splits", str(out / "splits.json")),
            *("--audio", str(out / "audio.h5"), "--visual", str(out / "visual.h5")),
            *("--on-bad-clip", on_bad_clip),
        ]
    )


def test_mmim_rows_are_words_and_text_drops_pauses(tmp_path):
    folder = write_mmim(tmp_path / "mmim")
    run_import("mmim", folder, tmp_path / "out")
    entries = pickle.loads((folder / "dev.pkl").read_bytes())
    (ids, visual, acoustic, words), label, segment = entries[0]
    manifest = pd.read_csv(tmp_path / "out/manifest.tsv", sep="\t").set_index("clip_id")
    row = manifest.loc[segment]
    assert row.split == "valid" and row.video_id == segment.split("[")[0]
    assert row.label == pytest.approx(float(label[0][0]), abs=1e-5)
    assert row.text == " ".join(w for w in words if w != "sp")
    with h5py.File(tmp_path / "out/audio.h5") as h5:
        np.testing.assert_allclose(h5[segment]["features"][()], acoustic)
        np.testing.assert_array_equal(h5[segment]["timestamps"][()], np.arange(len(words)))


def write_mmim_unaligned(folder):
    """MMIM's unaligned entries: 6-item features, padded sequences and their lengths."""
    rng = np.random.default_rng(0)
    for name in ("train", "dev", "test"):
        entries = []
        for i in range(3):
            words = ["so", "sp", "good"]
            visual = rng.normal(size=(40, 35)).astype(np.float32)
            acoustic = rng.normal(size=(60, 74)).astype(np.float32)
            v_len, a_len = 30 + i, 50 + i
            # MOSEI labels: 7 columns, sentiment first.
            label = np.array([[0.5 * i, 1, 2, 0, 0, 0, 0]], np.float32)
            entries.append(
                ((np.arange(3), visual, acoustic, words, v_len, a_len), label, f"{name}V[{i}]")
            )
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.pkl").write_bytes(pickle.dumps(entries))
    return folder


def test_mmim_unaligned_entries_drop_their_padding(tmp_path):
    folder = write_mmim_unaligned(tmp_path / "mmim")
    run_import("mmim", folder, tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out/manifest.tsv", sep="\t").set_index("clip_id")
    assert manifest.loc["devV[2]"].label == 1.0 and manifest.loc["devV[2]"].text == "so good"
    with h5py.File(tmp_path / "out/visual.h5") as vis, h5py.File(tmp_path / "out/audio.h5") as aud:
        assert len(vis["devV[2]"]["features"]) == 32 and len(aud["devV[2]"]["features"]) == 52
        assert "unaligned, MMIM pickles" in vis.attrs["feature_set"]


def test_mmsa_aligned_lengths_come_from_the_bert_mask(tmp_path):
    pkl = write_mmsa_pkl(tmp_path / "aligned_50.pkl", aligned=True)
    run_import("mmsa_pkl", pkl, tmp_path / "out")
    data = pickle.loads(pkl.read_bytes())
    length = int(data["test"]["text_bert"][2, 1].sum())
    with h5py.File(tmp_path / "out/visual.h5") as h5:
        assert len(h5["testVid0_2"]["features"]) == length
        assert "word-aligned" in h5.attrs["feature_set"]
    manifest = pd.read_csv(tmp_path / "out/manifest.tsv", sep="\t")
    assert set(manifest.video_id) >= {"trainVid0", "validVid1", "testVid0"}


def test_pickles_of_another_format_are_refused(tmp_path):
    mmsa = write_mmsa_pkl(tmp_path / "unaligned_50.pkl")
    with pytest.raises(IngestError, match="not a folder"):
        read_pickles("mmim", mmsa)
    folder = write_mmim(tmp_path / "mmim")
    (folder / "train.pkl").write_bytes(mmsa.read_bytes())
    with pytest.raises(IngestError, match=r"train.pkl: not an MMIM pickle.*found a dict"):
        read_pickles("mmim", folder)
    (folder / "train.pkl").write_bytes(pickle.dumps([("not", "a", "clip")]))
    with pytest.raises(IngestError, match="train.pkl: entry 0 is not a list of"):
        read_pickles("mmim", folder)
    write_mmim(folder)
    (folder / "dev.pkl").unlink()
    with pytest.raises(IngestError, match="mmim: no dev.pkl here"):
        read_pickles("mmim", folder)
    (tmp_path / "list.pkl").write_bytes(pickle.dumps(mmim_entries(3, 0, "v")))
    with pytest.raises(IngestError, match="list.pkl: not an MMSA pickle"):
        read_pickles("mmsa_pkl", tmp_path / "list.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"no pickle at all")
    with pytest.raises(IngestError, match="junk.pkl: not a readable pickle"):
        read_pickles("mmsa_pkl", tmp_path / "junk.pkl")
    data = pickle.loads(mmsa.read_bytes())
    del data["valid"]["audio_lengths"]
    (tmp_path / "nolen.pkl").write_bytes(pickle.dumps(data))
    with pytest.raises(IngestError, match="valid has neither audio_lengths nor text_bert"):
        read_pickles("mmsa_pkl", tmp_path / "nolen.pkl")


def test_bad_labels_and_nonfinite_values_in_pickles(tmp_path):
    pkl = write_mmsa_pkl(tmp_path / "unaligned_50.pkl")
    data = pickle.loads(pkl.read_bytes())
    data["train"]["regression_labels"][3] = 4.0
    data["test"]["audio"][1, :5, 0] = np.nan
    pkl.write_bytes(pickle.dumps(data))
    with pytest.raises(
        IngestError, match=r"clip trainVid0_3: label 4.0 is not a number in \[-3, 3\]"
    ):
        run_import("mmsa_pkl", pkl, tmp_path / "out")
    run_import("mmsa_pkl", pkl, tmp_path / "out", on_bad_clip="exclude")
    excluded = pd.read_csv(tmp_path / "out/excluded.tsv", sep="\t")
    assert excluded.clip_id.tolist() == ["trainVid0_3"]
    with h5py.File(tmp_path / "out/audio.h5") as h5:
        assert h5.attrs["nonfinite_values"] == 5 and h5.attrs["nonfinite_clips"] == 1
        assert json.loads(h5.attrs["excluded"])[0]["clip_id"] == "trainVid0_3"


REFUSED = (
    "asks to load posix.system, which no feature set holds; refusing to load it, because "
    "unpickling it would run code"
)


def test_a_malicious_mmim_pickle_is_refused_and_runs_nothing(tmp_path):
    """A train.pkl whose entry unpickles as os.system(...): the import stops naming the file
    and the global, and the command never runs.

    Break checked by hand: pickle.load(f, encoding="latin1") in _load, as before, makes the
    marker file appear (and this test fail)."""
    folder = write_mmim(tmp_path / "mmim")
    marker = tmp_path / "marker"
    entries = mmim_entries(4, 0, "v")
    entries[2] = (entries[2][0], RunsCode(marker), entries[2][2])
    (folder / "train.pkl").write_bytes(pickle.dumps(entries))
    with pytest.raises(IngestError, match=re.escape(f"{folder / 'train.pkl'} {REFUSED}")):
        run_import("mmim", folder, tmp_path / "out")
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "out").exists()


def test_a_malicious_mmsa_pickle_is_refused_and_runs_nothing(tmp_path):
    """The same inside an MMSA aligned_50.pkl, deep in the valid split's dict.

    Break checked by hand: pickle.load in _load makes the marker file appear."""
    pkl = write_mmsa_pkl(tmp_path / "aligned_50.pkl", aligned=True)
    marker = tmp_path / "marker"
    data = pickle.loads(pkl.read_bytes())
    data["valid"]["raw_text"] = RunsCode(marker)
    pkl.write_bytes(pickle.dumps(data, protocol=2))
    with pytest.raises(IngestError, match=re.escape(f"aligned_50.pkl {REFUSED}")):
        run_import("mmsa_pkl", pkl, tmp_path / "out")
    assert not marker.exists(), "the pickle's code ran"


def test_a_pickle_naming_a_module_not_installed_is_one_line(tmp_path):
    folder = write_mmim(tmp_path / "mmim")
    # A pickle of a class from a package this machine lacks (protocol 2: GLOBAL, NEWOBJ).
    (folder / "dev.pkl").write_bytes(b"\x80\x02cno_such_package_thne.data\nClip\n)\x81.")
    with pytest.raises(IngestError) as info:
        read_pickles("mmim", folder)
    assert str(info.value) == (
        f"{folder / 'dev.pkl'} asks to load no_such_package_thne.data.Clip, from a module that "
        "is not installed and that no feature set needs; refusing to load it"
    )


def recorded_globals(path) -> set[str]:
    """The globals a pickle asks for, as numpy 1.x names them (numpy 2 writes _core)."""
    asked: set[str] = set()

    class Recorder(FeatureSetUnpickler):
        def find_class(self, module, name):
            asked.add(f"{module}.{name}".replace("numpy._core.", "numpy.core."))
            return super().find_class(module, name)

    with open(path, "rb") as f:
        Recorder(f, path).load()
    return asked


ARRAYS = {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}


def test_each_format_needs_exactly_these_globals(tmp_path, realdata):
    """What every supported format holds besides plain containers: numpy arrays and dtypes,
    nothing else; each is on the allow-list. The MISA pickle is a real one (CMU-MOSI dev
    split as MISA ships it)."""
    mmim, unaligned = write_mmim(tmp_path / "mmim"), write_mmim_unaligned(tmp_path / "unaligned")
    files = {
        "MMIM aligned": mmim / "train.pkl",
        "MMIM unaligned": unaligned / "train.pkl",
        "MISA": need(realdata / "mosi" / "misa" / "dev.pkl"),
        "MMSA aligned_50": write_mmsa_pkl(tmp_path / "aligned_50.pkl", aligned=True),
        "MMSA unaligned_50": write_mmsa_pkl(tmp_path / "unaligned_50.pkl", aligned=False),
    }
    found = {name: recorded_globals(path) for name, path in files.items()}
    assert found == {name: ARRAYS for name in files}


def test_the_real_misa_pickle_reads_as_pickle_reads_it(realdata):
    """The restricted reader builds the very objects pickle.load builds, for the real file."""
    path = need(realdata / "mosi" / "misa" / "dev.pkl")
    with open(path, "rb") as f:
        ours = FeatureSetUnpickler(f, path).load()
    plain = pickle.loads(path.read_bytes(), encoding="latin1")  # a known file, trusted here
    assert len(ours) == len(plain) > 0
    for (features, label, segment), (want_f, want_l, want_s) in zip(ours, plain, strict=True):
        assert segment == want_s
        np.testing.assert_array_equal(label, want_l)
        for got, want in zip(features, want_f, strict=True):
            np.testing.assert_array_equal(got, want)


# What Python 2 wrote for [np.array([1.5, -2.0], np.float32), "word", set([1])] (protocol 2):
# byte strings (SHORT_BINSTRING) for text and for the array's data, __builtin__ for builtins.
PY2_PICKLE = (
    b"\x80\x02]q\x00(cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00"
    b"\x85q\x03U\x01bq\x04\x87q\x05Rq\x06(K\x01K\x02\x85q\x07cnumpy\ndtype\nq\x08U\x02f4q\tK"
    b"\x00K\x01\x87q\nRq\x0b(K\x03U\x01<q\x0cNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tq\rb"
    b"\x89U\x08\x00\x00\xc0?\x00\x00\x00\xc0q\x0etq\x0fbU\x04wordq\x10c__builtin__\nset\nq\x11]q"
    b"\x12K\x01a\x85q\x13Rq\x14e."
)


def test_python2_pickles_still_load(tmp_path):
    path = tmp_path / "py2.pkl"
    path.write_bytes(PY2_PICKLE)
    with open(path, "rb") as f:
        array, word, numbers = FeatureSetUnpickler(f, path).load()
    np.testing.assert_array_equal(array, np.array([1.5, -2.0], np.float32))
    assert array.dtype == np.float32 and word == "word" and numbers == {1}


def test_protocol_5_pickles_load(tmp_path):
    """pickle.HIGHEST_PROTOCOL (5; Python 3.14's default) writes an array as a buffer and
    numpy's _frombuffer, a constructor of plain data. Before: refused as code."""
    path = tmp_path / "p5.pkl"
    data = [np.arange(6, dtype=np.float32).reshape(2, 3), np.float64(2.5)]
    path.write_bytes(pickle.dumps(data, protocol=5))
    assert b"_frombuffer" in path.read_bytes()
    with open(path, "rb") as f:
        array, scalar = FeatureSetUnpickler(f, path).load()
    np.testing.assert_array_equal(array, data[0])
    assert scalar == 2.5
