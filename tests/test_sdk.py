"""CMU SDK computational sequences as a source: the real MOSI files, and imports of sequences
written by the SDK's own writer, good and bad."""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pandas as pd
import pytest
from feature_sets import ACOUSTIC_DIM, VISUAL_DIM, mosi_segments, write_sdk_set

from conftest import need
from thne.cli import build_parser
from thne.data.ingest import IngestError, normalise_text
from thne.data.sdk import label_clips, open_sequence, words_in, write_sequence
from thne.data.splits import NOT_IN_FOLD, standard_folds


def test_real_labels_sequence_gives_the_standard_clips(realdata):
    labels = open_sequence(need(realdata / "mosi/sdk/CMU_MOSI_Opinion_Labels.csd"), "labels")
    try:
        clips = label_clips(labels, standard_folds("mosi"))
    finally:
        labels.close()
    assert len(clips) == 2199
    in_folds = [c for c, reason in clips if reason != NOT_IN_FOLD]
    counts = pd.Series([c.split for c in in_folds]).value_counts().to_dict()
    assert counts == {"train": 1284, "valid": 229, "test": 686}
    assert all(-3 <= c.label <= 3 for c, _ in clips)
    # Matched in time order within each video, every label is that of OpinionLevelSentiment.csv
    # (to float32 precision), though the intervals differ by 0.29 s at the median.
    csv_labels = {
        f"{vid}[{n}]": row[3]
        for vid, rows in mosi_segments(realdata).items()
        for n, row in enumerate(rows)
    }
    differ = [c.clip_id for c, _ in clips if abs(csv_labels[c.clip_id] - c.label) > 1e-4]
    assert differ == []


def test_real_words_spell_the_transcripts(realdata, tmp_path):
    segments = mosi_segments(realdata)
    path = tmp_path / "labels.csd"
    write_sequence(
        path,
        "Opinion Segment Labels",
        {
            vid: {
                "intervals": np.array([[s, e] for s, e, *_ in rows]),
                "features": np.array([[label] for *_, label in rows], np.float32),
            }
            for vid, rows in segments.items()
        },
    )
    with open(need(realdata / "mosi/transcripts.csv"), newline="") as f:
        transcripts = {row[0]: row[1] for row in csv.reader(f)}
    labels = open_sequence(path, "labels")
    words_csd = need(realdata / "mosi/sdk/CMU_MOSI_ModifiedTimestampedWords.csd")
    words = open_sequence(words_csd, "words")
    try:
        clips = label_clips(labels, standard_folds("mosi"))
        equal = 0
        for clip, _ in clips:
            intervals, feats = words.read(clip.video_id)
            n = int(clip.clip_id.rsplit("[", 1)[1][:-1])
            segment = segments[clip.video_id][n][2]
            text = words_in(feats[()][:, 0], intervals, clip.start, clip.end)
            equal += normalise_text(text) == normalise_text(
                transcripts[f"{clip.video_id}_{segment}"]
            )
    finally:
        labels.close()
        words.close()
    assert len(clips) == 2199
    assert equal >= 1950


def main(argv):
    """The stage as `thne` runs it, with its exceptions (`thne` itself prints them)."""
    args = build_parser().parse_args(argv)
    args.func(args)


def run_import(paths, out, on_bad_clip="fail"):
    main(
        [
            "import-features",
            "--layout",
            "sdk",
            "--dataset",
            "mosi",
            *(
                x
                for role in ("labels", "words", "acoustic", "visual")
                for x in (f"--{role}-csd", str(paths[role]))
            ),
            "--manifest",
            str(out / "manifest.tsv"),
            "--excluded",
            str(out / "excluded.tsv"),
            "--splits",
            str(out / "splits.json"),
            "--audio",
            str(out / "audio.h5"),
            "--visual",
            str(out / "visual.h5"),
            "--on-bad-clip",
            on_bad_clip,
        ]
    )


def test_import_writes_the_extraction_contracts(realdata, tmp_path):
    paths = write_sdk_set(tmp_path / "sdk", realdata)
    run_import(paths, tmp_path / "out")
    manifest = pd.read_csv(tmp_path / "out/manifest.tsv", sep="\t", keep_default_na=False)
    assert len(manifest) == 32
    assert manifest.split.value_counts().to_dict() == {"train": 16, "valid": 8, "test": 8}
    assert all(manifest.clip_id.str.fullmatch(r"[\w-]+\[[0-7]\]"))
    assert (manifest.text.str.len() > 0).all()
    segments = mosi_segments(realdata)
    first = manifest.iloc[0]
    start, end, _, label = [r for r in segments[first.video_id] if r[1] > r[0]][0]
    assert first.clip_id == f"{first.video_id}[0]"
    assert first.label == pytest.approx(label) and first.start == pytest.approx(start, abs=1e-4)
    with (
        h5py.File(tmp_path / "out/audio.h5") as audio,
        h5py.File(tmp_path / "out/visual.h5") as vis,
    ):
        assert sorted(audio) == sorted(manifest.clip_id) == sorted(vis)
        assert list(audio.attrs["feature_names"][:2]) == ["covarep_0", "covarep_1"]
        # No dimension names in the visual sequence: numbered columns.
        assert len(vis.attrs["feature_names"]) == VISUAL_DIM
        assert "CMU_MOSI_COVAREP 74 + CMU_MOSI_Visual_Facet_42 35" in vis.attrs["feature_set"]
        assert audio.attrs["nonfinite_values"] == 0
        duration = first.end - first.start
        a = audio[first.clip_id]
        # Rows at 100 Hz overlapping the interval, timestamped from the clip's start.
        assert a["features"].shape[1] == ACOUSTIC_DIM
        assert abs(len(a["features"]) - duration * 100) <= 2
        ts = a["timestamps"][()]
        assert ts[0] == 0 and 0 < ts[-1] <= duration and (np.diff(ts) > 0).all()
        assert abs(len(vis[first.clip_id]["features"]) - duration * 30) <= 2
    report = json.loads((tmp_path / "out/splits.json").read_text())
    assert report["layout"] == "sdk" and report["counts"]["train"] == 16


def test_nonfinite_values_are_replaced_and_counted(realdata, tmp_path):
    paths = write_sdk_set(tmp_path / "sdk", realdata)
    with h5py.File(paths["acoustic"], "r+") as h5:
        group = h5[list(h5)[0]]["data"]
        vid = sorted(group)[0]
        feats = group[vid]["features"][()]
        start, end, *_ = [r for r in mosi_segments(realdata)[vid] if r[1] > r[0]][0]
        middle = int((start + end) / 2 * 100)  # a row well inside the video's first clip
        feats[middle : middle + 30, 3] = np.nan
        feats[middle + 40 : middle + 50, 7] = -np.inf
        group[vid]["features"][...] = feats
    run_import(paths, tmp_path / "out")
    with h5py.File(tmp_path / "out/audio.h5") as audio:
        assert audio.attrs["nonfinite_policy"] == "replaced by 0"
        assert audio.attrs["nonfinite_values"] == 40
        assert audio.attrs["nonfinite_clips"] == 1
        assert all(np.isfinite(audio[c]["features"][()]).all() for c in audio)


def test_missing_and_wrong_kind_sequences_are_named(realdata, tmp_path):
    paths = write_sdk_set(tmp_path / "sdk", realdata)
    with pytest.raises(IngestError, match="acoustic sequence does not exist"):
        run_import({**paths, "acoustic": tmp_path / "none.csd"}, tmp_path / "out")
    with pytest.raises(IngestError, match="not a acoustic sequence.*holds words"):
        run_import({**paths, "acoustic": paths["words"]}, tmp_path / "out")
    with pytest.raises(IngestError, match="not a words sequence"):
        run_import({**paths, "words": paths["visual"]}, tmp_path / "out")
    with pytest.raises(IngestError, match="one column per row"):
        run_import({**paths, "visual": paths["labels"]}, tmp_path / "out")
    other = tmp_path / "other.csd"
    with h5py.File(other, "w") as h5:
        h5["x"] = np.zeros(3)
    with pytest.raises(IngestError, match="other.csd: not a computational sequence"):
        run_import({**paths, "visual": other}, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.tsv").exists()


def test_absent_video_empty_clip_and_bad_label(realdata, tmp_path):
    segments = mosi_segments(realdata)
    vids = sorted(v for v in segments if standard_folds("mosi").get(v) == "train")[:2]
    paths = write_sdk_set(tmp_path / "sdk", realdata, labels_override={(vids[0], 1): 3.5})
    # Visual: drop the second train video; acoustic: rows only until the first clip ends.
    with h5py.File(paths["visual"], "r+") as h5:
        del h5[list(h5)[0]]["data"][vids[1]]
    with h5py.File(paths["acoustic"], "r+") as h5:
        group = h5[list(h5)[0]]["data"][vids[0]]
        iv = group["intervals"][()]
        iv[iv[:, 0] > segments[vids[0]][0][1] + 5] += 10000.0
        group["intervals"][...] = iv
    with pytest.raises(IngestError) as err:
        run_import(paths, tmp_path / "out")
    message = str(err.value)
    assert f"clip {vids[1]}[0]: video {vids[1]} is not in the visual sequence" in message
    assert f"clip {vids[0]}[1]: label 3.5 is not a number in [-3, 3]" in message
    assert f"clip {vids[0]}[7]: no acoustic rows in the interval" in message
    assert not (tmp_path / "out" / "manifest.tsv").exists()

    run_import(paths, tmp_path / "out", on_bad_clip="exclude")
    excluded = pd.read_csv(tmp_path / "out/excluded.tsv", sep="\t")
    reasons = dict(zip(excluded.clip_id, excluded.reason, strict=True))
    assert sum(r.startswith(f"video {vids[1]} is not in the visual") for r in reasons.values()) == 8
    assert reasons[f"{vids[0]}[1]"].startswith("label 3.5")
    manifest = pd.read_csv(tmp_path / "out/manifest.tsv", sep="\t")
    assert not set(manifest.clip_id) & set(reasons)
    with h5py.File(tmp_path / "out/audio.h5") as audio:
        recorded = {e["clip_id"] for e in json.loads(audio.attrs["excluded"])}
        assert recorded == set(reasons) and sorted(audio) == sorted(manifest.clip_id)
