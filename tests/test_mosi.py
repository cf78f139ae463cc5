"""CMU-MOSI in CMU's archive layout, built from the real annotation files with tiny media."""

import csv
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from conftest import REALDATA, need, tiny_mp4
from thne.cli import main as thne
from thne.data.ingest import IngestError, ingest, normalise_text
from thne.data.mosi import read_cmu_mosi
from thne.data.splits import standard_folds


def transcripts_by_video() -> dict[str, list[tuple[str, str]]]:
    by_video = defaultdict(list)
    with open(need(REALDATA / "mosi" / "transcripts.csv"), newline="") as f:
        for row in csv.reader(f):
            vid, seg = row[0].rsplit("_", 1)
            by_video[vid].append((seg, row[1]))
    return by_video


def build_cmu_mosi(
    root: Path, drop_label: str | None = None, extra_segment: str | None = None
) -> Path:
    """Raw/Labels, Raw/Transcript/Segmented and one tiny segmented clip per label row."""
    raw = root / "CMU_MOSI" / "Raw"
    (raw / "Labels").mkdir(parents=True)
    (raw / "Transcript" / "Segmented").mkdir(parents=True)
    (raw / "Video" / "Segmented").mkdir(parents=True)
    (raw / "Video" / "Full").mkdir(parents=True)
    labels = (need(REALDATA / "mosi" / "OpinionLevelSentiment.csv")).read_text().splitlines()
    if drop_label:
        vid, seg = drop_label.rsplit("_", 1)
        labels = [line for line in labels if f",{vid},{seg}," not in line]
    (raw / "Labels" / "OpinionLevelSentiment.csv").write_text("\n".join(labels) + "\n")
    for vid, lines in transcripts_by_video().items():
        if extra_segment and vid == extra_segment.rsplit("_", 1)[0]:
            lines = [*lines, (extra_segment.rsplit("_", 1)[1], "A LINE NOBODY LABELLED")]
        text = "".join(f"{seg}_DELIM_{t}\n" for seg, t in lines)
        (raw / "Transcript" / "Segmented" / f"{vid}.annotprocessed").write_text(text)
    source = tiny_mp4(root / "tiny.mp4")
    for line in labels:
        vid, seg = line.split(",")[2:4]
        os.link(source, raw / "Video" / "Segmented" / f"{vid}_{seg}.mp4")
    return root


@pytest.fixture(scope="module")
def mosi_copy(tmp_path_factory):
    return build_cmu_mosi(tmp_path_factory.mktemp("mosi"))


def test_real_annotations_give_table1_splits_and_real_text(mosi_copy, tmp_path):
    clips, refused = read_cmu_mosi(mosi_copy)
    assert refused == []
    kept, rejected = ingest(clips, tmp_path / "m.tsv", tmp_path / "x.tsv", threads=2)
    assert rejected == []
    counts = pd.Series([c.split for c in kept]).value_counts().to_dict()
    assert counts == {"train": 1284, "valid": 229, "test": 686}
    folds = standard_folds("mosi")
    assert all(c.split == folds[c.video_id] for c in kept)  # clip by clip, not only the sums
    truth = {}
    with open(need(REALDATA / "mosi" / "transcripts.csv"), newline="") as f:
        for row in csv.reader(f):
            truth[row[0]] = normalise_text(row[1])
    assert {c.clip_id: c.text for c in kept} == truth
    # The one label row with start == end keeps its segmented clip.
    odd = next(c for c in kept if c.clip_id == "2WGyTLYerpo_44")
    assert odd.media.endswith("Video/Segmented/2WGyTLYerpo_44.mp4") and odd.start == 0.0


def test_cli_writes_splits_report(mosi_copy, tmp_path):
    thne(
        [
            "ingest",
            "--layout",
            "cmu",
            "--dataset",
            "mosi",
            "--raw-dir",
            str(mosi_copy),
            "--manifest",
            str(tmp_path / "m.tsv"),
            "--excluded",
            str(tmp_path / "x.tsv"),
            "--splits",
            str(tmp_path / "splits.json"),
            "--threads",
            "2",
        ]
    )
    report = json.loads((tmp_path / "splits.json").read_text())
    assert report["counts"] == report["paper_table1"] == {"train": 1284, "valid": 229, "test": 686}
    assert report["difference"] == {"train": 0, "valid": 0, "test": 0}
    assert report["left_out"] == {}


@pytest.mark.slow
def test_mismatches_are_recorded(tmp_path):
    root = build_cmu_mosi(
        tmp_path / "copy", drop_label="03bSnISJMiM_5", extra_segment="_dI--eQ6qVU_99"
    )
    raw = root / "CMU_MOSI" / "Raw"
    # A video outside every fold, with a label and a transcript.
    with open(raw / "Labels" / "OpinionLevelSentiment.csv", "a") as f:
        f.write("1.0,3.0,notAFoldVid,1,1.5\n2.0,1.0,notAFoldVid,2,0.5\n")
    (raw / "Transcript" / "Segmented" / "notAFoldVid.annotprocessed").write_text(
        "1_DELIM_HELLO\n2_DELIM_BYE\n"
    )
    # A label row whose segmented clip is missing falls back to the full video and its interval.
    (raw / "Video" / "Segmented" / "_dI--eQ6qVU_1.mp4").unlink()
    (raw / "Video" / "Segmented" / "_dI--eQ6qVU_2.mp4").unlink()
    tiny_mp4(raw / "Video" / "Full" / "_dI--eQ6qVU.mp4", seconds=40.0)
    # A label row without its transcript line.
    transcript = raw / "Transcript" / "Segmented" / "_dI--eQ6qVU.annotprocessed"
    transcript.write_text(
        "".join(t + "\n" for t in transcript.read_text().splitlines() if not t.startswith("3_"))
    )

    clips, refused = read_cmu_mosi(root / "CMU_MOSI")
    reasons = {r.clip.clip_id: r.reason for r in refused}
    assert reasons["03bSnISJMiM_5"] == "transcript line without a label row"
    assert reasons["_dI--eQ6qVU_99"] == "transcript line without a label row"
    assert reasons["_dI--eQ6qVU_3"] == "label row without a transcript line"
    assert reasons["notAFoldVid_1"] == reasons["notAFoldVid_2"] == "not in a standard fold"
    fallback = next(c for c in clips if c.clip_id == "_dI--eQ6qVU_1")
    assert fallback.media.endswith("Video/Full/_dI--eQ6qVU.mp4")
    assert (fallback.start, fallback.end) == pytest.approx((27.87913832, 32.9276644))

    with pytest.raises(IngestError, match="_dI--eQ6qVU_3"):
        ingest(clips, tmp_path / "m.tsv", tmp_path / "x.tsv", rejected=refused, threads=2)
    kept, rejected = ingest(
        clips,
        tmp_path / "m.tsv",
        tmp_path / "x.tsv",
        rejected=refused,
        on_bad_clip="exclude",
        threads=2,
    )
    excluded = pd.read_csv(tmp_path / "x.tsv", sep="\t").set_index("clip_id")
    # _dI--eQ6qVU_2 runs from 45.5 s to 47.8 s: beyond the 40 s full video.
    assert "after the media's end" in excluded.loc["_dI--eQ6qVU_2", "reason"]
    assert set(excluded.index) == {
        "03bSnISJMiM_5",
        "_dI--eQ6qVU_99",
        "_dI--eQ6qVU_3",
        "notAFoldVid_1",
        "notAFoldVid_2",
        "_dI--eQ6qVU_2",
    }
    assert len(kept) == 2199 - 3  # minus the dropped label, the missing transcript, and _2


def test_clips_outside_the_folds_never_fail_the_run(tmp_path):
    root = build_cmu_mosi(tmp_path / "copy")
    raw = root / "CMU_MOSI" / "Raw"
    with open(raw / "Labels" / "OpinionLevelSentiment.csv", "a") as f:
        f.write("1.0,3.0,notAFoldVid,1,1.5\n")
    (raw / "Transcript" / "Segmented" / "notAFoldVid.annotprocessed").write_text("1_DELIM_HELLO\n")
    clips, refused = read_cmu_mosi(root)
    kept, rejected = ingest(
        clips, tmp_path / "m.tsv", tmp_path / "x.tsv", rejected=refused, threads=2
    )
    assert [r.clip.clip_id for r in rejected] == ["notAFoldVid_1"] and len(kept) == 2199


def test_no_labels_file(tmp_path):
    with pytest.raises(IngestError, match="OpinionLevelSentiment.csv"):
        read_cmu_mosi(tmp_path)
    shutil.rmtree(tmp_path)


def test_splits_report_explains_surplus(tmp_path):
    from thne.data.manifest import Clip
    from thne.data.splits import write_splits_report

    kept = [Clip(f"v_{i}", "v", 0.0, 1.0, "train", 0.0, "t", "m") for i in range(1285)]
    gone = Clip("w_1", "w", 0.0, 1.0, "valid", 0.0, "t", "m")
    report = write_splits_report(
        tmp_path / "s.json",
        kept,
        [(gone, "label row without a transcript line")],
        dataset="mosi",
        layout="cmu",
    )
    assert report["difference"] == {"train": 1, "valid": -229, "test": -686}
    assert "more clips than paper Table 1 in train" in report["note"]
    assert report["left_out"] == {
        "valid": [{"clip_id": "w_1", "reason": "label row without a transcript line"}]
    }
    assert json.loads((tmp_path / "s.json").read_text()) == report
