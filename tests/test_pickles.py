"""MMIM/MISA and MMSA feature pickles as a source: the formats, and bad pickles."""

from __future__ import annotations

import json
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
from feature_sets import mmim_entries, write_mmim, write_mmsa_pkl

from thne.cli import build_parser
from thne.data.ingest import IngestError
from thne.data.pickles import read_pickles


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


def test_mmim_unaligned_entries_drop_their_padding(tmp_path):
    folder = tmp_path / "mmim"
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
