import contextlib
import io
import json
import math
import shutil
from collections import Counter

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from mmsdk.mmdatasdk.computational_sequence.file_ops import writeCSD
from mmsdk.mmdatasdk.configurations.metadataconfigs import featuresetMetadataTemplate

from conftest import FIXTURES, REALDATA, need, run_snakemake
from thne.data.ingest import IngestError, check_clip, normalise_text
from thne.data.manifest import Clip
from thne.data.mosei import (
    LabelSegment,
    TranscriptLine,
    match_segments,
    mosei_root,
    read_cmu_mosei,
    read_label_segments,
    read_transcript,
)
from thne.data.splits import NOT_IN_FOLD, standard_folds

DUMP = REALDATA / "mosei" / "sdk_labels_dump.csv"
CLIP_MP4 = FIXTURES / "media" / "astronaut_75frames.mp4"

# Real videos of the SDK labels: train, train, valid, test, and one in no standard fold.
TRAIN, TRAIN_NO_LINE, VALID, TEST, NO_FOLD = (
    "-3nNcZdcdvU",
    "-aqamKhZ1Ec",
    "-571d8cVauQ",
    "-6rXp3zJ3kc",
    "-HvKLjmsO5U",
)
# A train video whose first interval starts before 0 (the SDK has 239 such rows).
NEG_START = "0EAAfLCQabY"
# The only video in which the installed SDK fork's folds differ from upstream CMU's: it is in
# this fork's train fold, and in no fold upstream (nor in the MMSA label file).
FORK_EXTRA = "-NFrJFQijFE"


def dump_rows() -> pd.DataFrame:
    return pd.read_csv(need(DUMP), dtype={"id": str})


def write_labels(path, rows: pd.DataFrame, top: str = "All Labels"):
    """A labels sequence in the SDK's layout, written by the SDK's own writer."""
    # Whole arrays indexed per video: slicing the frame per video costs seconds on all rows.
    intervals = rows[["interval_start", "interval_end"]].to_numpy(float)
    features = rows[[f"feature_{i}" for i in range(7)]].to_numpy(np.float32)
    data = {
        vid: {"intervals": intervals[ix], "features": features[ix]}
        for vid, ix in rows.groupby("id", sort=False).indices.items()
    }
    metadata = dict.fromkeys(featuresetMetadataTemplate, "test fixture")
    metadata["root name"] = top
    with contextlib.redirect_stdout(io.StringIO()):  # the writer narrates on stdout
        writeCSD(data, metadata, top, str(path))
    return path


def transcript_line(vid, seg, start, end, text):
    return f"{vid}___{seg}___{start}___{end}___{text}"


def rows_of(rows, vid):
    return rows[rows.id == vid].reset_index(drop=True)


@pytest.fixture
def archive(tmp_path):
    """An unpacked archive (Raw/...) with real label rows, made-up text and a tiny real mp4."""
    rows = dump_rows()
    need(CLIP_MP4)
    picked = rows[rows.id.isin([TRAIN, TRAIN_NO_LINE, VALID, TEST, NO_FOLD, NEG_START])]
    empty = rows_of(rows, VALID).iloc[[0]].assign(interval_start=30.0, interval_end=30.0)
    labels = write_labels(tmp_path / "CMU_MOSEI_Labels.csd", pd.concat([picked, empty]))

    raw = tmp_path / "CMU_MOSEI" / "Raw"
    trans = raw / "Transcript" / "Segmented" / "Combined"
    seg_dir = raw / "Videos" / "Segmented" / "Combined"
    full_dir = raw / "Videos" / "Full" / "Combined"
    for folder in (trans, seg_dir, full_dir, raw / "Audio" / "Full" / "WAV_16000"):
        folder.mkdir(parents=True)

    def write_transcript(vid, lines):
        (trans / f"{vid}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def times(vid):
        return list(rows_of(rows, vid)[["interval_start", "interval_end"]].itertuples(None))

    # Segments numbered from 0 in time order; one extra segment has no label.
    t = sorted(times(TRAIN))
    write_transcript(
        TRAIN,
        [
            transcript_line(TRAIN, i, s, e, f"Sentence {i} of the train video")
            for i, (s, e) in enumerate(t)
        ]
        + [transcript_line(TRAIN, 3, 50.0, 55.5, "Unlabelled closing words")],
    )
    for seg in (0, 1):
        shutil.copy(CLIP_MP4, seg_dir / f"{TRAIN}_{seg}.mp4")
    shutil.copy(CLIP_MP4, full_dir / f"{TRAIN}.mp4")

    # The third label (29.115-42.317) has no line; times printed with 2 decimals stay in reach.
    t = sorted(times(TRAIN_NO_LINE))
    write_transcript(
        TRAIN_NO_LINE,
        [
            transcript_line(TRAIN_NO_LINE, i + 1, f"{s:.2f}", f"{e:.2f}", "I did not like it")
            for i, (s, e) in enumerate(t[:2])
        ],
    )
    shutil.copy(CLIP_MP4, full_dir / f"{TRAIN_NO_LINE}.mp4")

    t = sorted(times(VALID))
    write_transcript(
        VALID,
        [transcript_line(VALID, i, s, e, f"valid words {i}") for i, (s, e) in enumerate(t)]
        + [transcript_line(VALID, 7, 30.0, 30.0, "empty interval")],
    )
    for seg in (0, 1, 2, 7):
        shutil.copy(CLIP_MP4, seg_dir / f"{VALID}_{seg}.mp4")

    # No media at all for the test video.
    t = sorted(times(TEST))
    write_transcript(
        TEST, [transcript_line(TEST, i, s, e, "test words") for i, (s, e) in enumerate(t)]
    )

    t = sorted(times(NO_FOLD))
    write_transcript(
        NO_FOLD, [transcript_line(NO_FOLD, i, s, e, "no fold") for i, (s, e) in enumerate(t)]
    )
    for seg in range(len(t)):
        shutil.copy(CLIP_MP4, seg_dir / f"{NO_FOLD}_{seg}.mp4")

    t = sorted(times(NEG_START))
    write_transcript(
        NEG_START,
        [transcript_line(NEG_START, i, s, e, "early start") for i, (s, e) in enumerate(t)],
    )
    shutil.copy(CLIP_MP4, full_dir / f"{NEG_START}.mp4")
    return raw.parent, labels, rows


def by_id(items):
    return {(c.clip if hasattr(c, "clip") else c).clip_id: c for c in items}


def test_clips_ids_splits_labels_and_media(archive):
    root, labels, rows = archive
    clips, _ = read_cmu_mosei(root, labels)
    got = by_id(clips)
    assert sorted(got) == sorted(
        [f"{TRAIN}_{i}" for i in range(3)]
        + [f"{TRAIN_NO_LINE}_{i}" for i in (1, 2)]
        + [f"{VALID}_{i}" for i in range(3)]
        + [f"{TEST}_{i}" for i in range(3)]
        + [f"{NEG_START}_{i}" for i in range(3)]
    )
    assert {c.split for c in clips if c.video_id in (TRAIN, TRAIN_NO_LINE, NEG_START)} == {"train"}
    assert {got[f"{VALID}_{i}"].split for i in range(3)} == {"valid"}
    assert {got[f"{TEST}_{i}"].split for i in range(3)} == {"test"}

    # Label = sentiment column of the row with that interval; text as written.
    first = rows_of(rows, TRAIN).sort_values("interval_start").iloc[0]
    assert got[f"{TRAIN}_0"].label == pytest.approx(first.feature_0)
    assert got[f"{TRAIN}_0"].text == "Sentence 0 of the train video"
    assert got[f"{TRAIN_NO_LINE}_1"].label == pytest.approx(-2.0)

    # Segmented file present: the file is the clip, end comes from the media later.
    seg = got[f"{TRAIN}_1"]
    assert seg.media.endswith(f"Raw/Videos/Segmented/Combined/{TRAIN}_1.mp4")
    assert seg.start == 0.0 and math.isnan(seg.end)
    # No segmented file: the full video cut at the label interval.
    full = got[f"{TRAIN}_2"]
    assert full.media.endswith(f"Raw/Videos/Full/Combined/{TRAIN}.mp4")
    assert (full.start, full.end) == pytest.approx((36.399, 44.173))
    # Neither: still the full-video path, for the shared checker to reject as missing.
    missing = got[f"{TEST}_0"]
    assert missing.media.endswith(f"Raw/Videos/Full/Combined/{TEST}.mp4")
    assert (missing.start, missing.end) == pytest.approx((14.468, 22.882))
    # An interval starting before 0 is cut from the video's first frame.
    early = got[f"{NEG_START}_0"]
    assert early.start == 0.0 and early.end == pytest.approx(5.710658, abs=1e-5)


def test_rows_and_lines_that_cannot_be_clips(archive):
    root, labels, _ = archive
    _, rejected = read_cmu_mosei(root, labels)
    reasons = {r.clip.clip_id: r.reason for r in rejected}
    assert len(reasons) == len(rejected) == 5

    assert reasons[f"{TRAIN_NO_LINE}[29.115,42.317]"].startswith(
        "no transcript line for the label interval [29.115, 42.317]"
    )
    assert reasons[f"{TRAIN}_3"].startswith("transcript line without a label")
    assert "[50.000, 55.500]" in reasons[f"{TRAIN}_3"]
    assert reasons[f"{VALID}_7"] == "label interval [30.0, 30.0] s is empty or negative"
    assert reasons[f"{NO_FOLD}_0"] == reasons[f"{NO_FOLD}_1"] == NOT_IN_FOLD

    by = by_id(rejected)
    assert math.isnan(by[f"{TRAIN}_3"].clip.label) and by[f"{TRAIN}_3"].clip.split == "train"
    assert by[f"{NO_FOLD}_0"].clip.split == ""
    assert by[f"{NO_FOLD}_0"].clip.media.endswith(f"Segmented/Combined/{NO_FOLD}_0.mp4")


def test_clips_pass_the_shared_checks(archive):
    root, labels, _ = archive
    clips, _ = read_cmu_mosei(root, labels)
    checked = check_clip(by_id(clips)[f"{VALID}_0"])
    assert isinstance(checked, Clip) and checked.end == pytest.approx(3.0, abs=0.05)
    assert checked.text == "valid words 0"
    # The media is 3 s long: a cut at 14-23 s of a missing file is refused by the checker.
    assert not isinstance(check_clip(by_id(clips)[f"{TEST}_0"]), Clip)


def test_root_may_be_the_archive_or_its_raw_folder(archive, tmp_path):
    root, labels, _ = archive
    assert mosei_root(root) == root / "Raw" == mosei_root(root / "Raw")
    assert [c.clip_id for c in read_cmu_mosei(root / "Raw", labels)[0]] == [
        c.clip_id for c in read_cmu_mosei(root, labels)[0]
    ]
    # A wrapper folder above the archive's own is looked through too.
    assert mosei_root(root.parent) == root / "Raw"
    (tmp_path / "empty" / "Raw").mkdir(parents=True)
    with pytest.raises(IngestError, match=r"looked for Videos/ and Transcript/"):
        mosei_root(tmp_path / "empty")
    with pytest.raises(IngestError, match="no such folder"):
        mosei_root(tmp_path / "nowhere")


def test_top_group_name_may_vary(tmp_path):
    rows = rows_of(dump_rows(), VALID)
    path = write_labels(tmp_path / "labels.csd", rows, top="CMU_MOSEI_Labels")
    got = read_label_segments(path)
    assert [(s.start, s.sentiment, s.split) for s in got] == [
        (r.interval_start, pytest.approx(r.feature_0), "valid")
        for r in rows.sort_values("interval_start").itertuples()
    ]


def test_bad_labels_files(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        read_label_segments(tmp_path / "CMU_MOSEI_Labels.csd")
    other = tmp_path / "labels.h5"
    other.write_bytes(b"")
    with pytest.raises(IngestError, match=r"contains \.csd"):
        read_label_segments(other)
    path = write_labels(tmp_path / "two.csd", rows_of(dump_rows(), VALID))
    with h5py.File(path, "a") as f:
        f.create_group("Another")
    with pytest.raises(IngestError, match="one top-level group.*found 2"):
        read_label_segments(path)


def test_transcript_lines(tmp_path):
    vid = "ab_c___d_9"  # underscores, even a run of three, must not split the id
    path = tmp_path / f"{vid}.txt"
    path.write_bytes(
        b"\xef\xbb\xbf"  # a BOM
        + f"{vid}___0___-0.487528___5.71___Well___ it was fine\r\n\r\n".encode()
        + f"{vid}___1_____6.0___7.5___   loud\n".encode()
        + f"{vid}___2___oops\n".encode()
        + b"other___3___1.0___2.0___wrong video\n"
    )
    lines, bad = read_transcript(path, vid)
    assert lines == [
        TranscriptLine(vid, "0", -0.487528, 5.71, "Well___ it was fine", 1),
        TranscriptLine(vid, "1", 6.0, 7.5, "   loud", 3),
    ]
    assert [n for n, _ in bad] == [4, 5]

    # Not UTF-8: read as cp1252, whose curly quote is what such files mean.
    path.write_bytes(f"{vid}___0___0___1___".encode() + b"it\x92s good\n")
    assert read_transcript(path, vid)[0][0].text == "it\u2019s good"


def test_matching_rule():
    labels = [LabelSegment("v", 0.0, 4.0, 1.0, "train"), LabelSegment("v", 4.0, 9.0, 2.0, "train")]
    lines = [
        TranscriptLine("v", "0", 0.004, 3.996, "a", 1),
        TranscriptLine("v", "9", 0.0, 4.0, "a again", 2),  # a duplicate: closer, so it wins
        TranscriptLine("v", "1", 4.02, 9.0, "b", 3),  # 0.02 s off: too far
    ]
    pairs, lone_labels, lone_lines = match_segments(labels, lines)
    assert [(p[0].end, p[1].segment) for p in pairs] == [(4.0, "9")]
    assert lone_labels == [labels[1]]
    assert [x.segment for x in lone_lines] == ["0", "1"]
    assert match_segments(labels, lines, tolerance=0.05)[1] == []


def test_real_labels_give_the_standard_fold_counts(tmp_path):
    """The whole SDK labels sequence: 16327/1871/4662 clips and 399 in no fold (README)."""
    rows = dump_rows()
    assert len(rows) == 23259
    path = write_labels(tmp_path / "CMU_MOSEI_Labels.csd", rows)
    folds = standard_folds("mosei")
    # CMU's folds: 2249/300/678 videos. The PyPI copy of the SDK has FORK_EXTRA in train too.
    assert Counter(folds.values()) == {"train": 2249, "valid": 300, "test": 678}
    assert FORK_EXTRA not in folds

    segments = read_label_segments(path, folds)
    assert len(segments) == 23259
    assert Counter(s.split for s in segments) == {
        "train": 16327,
        "valid": 1871,
        "test": 4662,
        None: 399,
    }
    assert sum(s.video_id == FORK_EXTRA for s in segments) == 4


@pytest.mark.slow
def test_workflow_ingests_a_cmu_mosei_copy(archive, tmp_path):
    """`snakemake data/mosei/manifest.tsv` on an unpacked copy and a local labels file: the
    manifest and excluded.tsv account for every candidate clip, clip by clip."""
    root, labels, _ = archive
    # The fixture's test video has no media; give it segmented clips so every split has some.
    for seg in range(3):
        shutil.copy(
            CLIP_MP4, mosei_root(root) / "Videos" / "Segmented" / "Combined" / f"{TEST}_{seg}.mp4"
        )
    cfg = tmp_path / "c.yaml"
    source = {"layout": "cmu", "raw_dir": str(root), "labels": str(labels), "url": None}
    cfg.write_text(yaml.safe_dump({"datasets": {"mosei": {"source": source}}}))
    run_snakemake(tmp_path, "--configfile", str(cfg), "--cores", "2", "data/mosei/manifest.tsv")
    manifest = pd.read_csv(tmp_path / "data/mosei/manifest.tsv", sep="\t", dtype={"clip_id": str})
    clips, rejected = read_cmu_mosei(root, labels)
    excluded = pd.read_csv(tmp_path / "data/mosei/excluded.tsv", sep="\t", dtype={"clip_id": str})
    # Clip by clip: every candidate is either in the manifest, as read, or excluded with a reason.
    kept = set(manifest.clip_id)
    assert kept.isdisjoint(excluded.clip_id) and excluded.reason.str.len().gt(0).all()
    assert kept | set(excluded.clip_id) == {c.clip_id for c in clips} | {
        r.clip.clip_id for r in rejected
    }
    segmented = {f"{TRAIN}_0", f"{TRAIN}_1"} | {f"{v}_{i}" for v in (VALID, TEST) for i in range(3)}
    assert segmented <= kept  # clips with their own readable file are all kept
    candidates = by_id(clips)
    for row in manifest.itertuples():
        clip = candidates[row.clip_id]
        assert (row.split, row.text) == (clip.split, normalise_text(clip.text)), row.clip_id
        assert row.label == pytest.approx(clip.label, abs=1e-6), row.clip_id
    report = json.loads((tmp_path / "data/mosei/splits.json").read_text())
    assert report["paper_table1"] == {"train": 16326, "valid": 1871, "test": 4659}
    assert (
        report["counts"]
        == manifest.split.value_counts().reindex(["train", "valid", "test"], fill_value=0).to_dict()
    )
    assert "not in a standard fold" in set(excluded.reason)
    left_out = [e["clip_id"] for entries in report["left_out"].values() for e in entries]
    assert sorted(left_out) == sorted(excluded.clip_id)
