import shutil

import pandas as pd
import pytest

from conftest import need
from thne.data.ingest import IngestError, ingest, normalise_text, read_mmsa
from thne.data.manifest import MANIFEST_COLUMNS, read_manifest


def make_mmsa(root, media, rows):
    """An MMSA-layout copy: label.csv plus Raw/<video_id>/<clip_id>.mp4 from real fixture files."""
    for vid, seg, src, *_ in rows:
        dest = root / "Raw" / vid / f"{seg}.mp4"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src is not None:
            shutil.copy(need(media / src), dest)
    pd.DataFrame(
        [
            {"video_id": v, "clip_id": s, "text": t, "label": lab, "mode": m}
            for v, s, _, t, lab, m in rows
        ]
    ).to_csv(root / "label.csv", index=False)
    return root


def ingest_mmsa(root, manifest, excluded, **kwargs):
    """Ingest an MMSA copy with what its reader refused, as the ingest stage does."""
    clips, refused = read_mmsa(root)
    return ingest(clips, manifest, excluded, rejected=refused, **kwargs)


GOOD = [
    ("vidA", "1", "astronaut_75frames.mp4", "It was  REALLY good", 2.4, "train"),
    ("vidA", "2", "astronaut_noface_frames_26-50.mp4", "not my thing", -1.0, "train"),
    ("vidB", "1", "astronaut_75frames.mp4", "fine", 0.0, "valid"),
    ("vidC", "1", "talking_face.mp4", "so so", 0.5, "test"),
]


def test_mmsa_manifest(tmp_path, media):
    root = make_mmsa(tmp_path / "ds", media, GOOD)
    kept, rejected = ingest_mmsa(root, tmp_path / "m.tsv", tmp_path / "x.tsv")
    assert not rejected
    frame = pd.read_csv(tmp_path / "m.tsv", sep="\t", dtype={"clip_id": str})
    assert tuple(frame.columns) == MANIFEST_COLUMNS
    assert list(frame.clip_id) == ["vidA_1", "vidA_2", "vidB_1", "vidC_1"]
    assert frame.loc[0, "text"] == "it was really good"
    assert frame.loc[0, "start"] == 0 and frame.loc[0, "end"] == pytest.approx(3.0, abs=0.05)
    assert frame.loc[3, "end"] == pytest.approx(19.7, abs=0.1)
    assert list(frame.split) == ["train", "train", "valid", "test"]
    assert read_manifest(tmp_path / "m.tsv")[0].media.endswith("Raw/vidA/1.mp4")
    assert pd.read_csv(tmp_path / "x.tsv", sep="\t").empty


def test_raw_dir_may_name_raw_itself(tmp_path, media):
    root = make_mmsa(tmp_path / "ds", media, GOOD)
    via_raw, _ = read_mmsa(root / "Raw")
    assert [c.clip_id for c in via_raw] == [c.clip_id for c in read_mmsa(root)[0]]


BAD = GOOD + [
    ("vidD", "1", None, "missing file", 1.0, "train"),
    ("vidD", "2", "talking_face.LICENSE-source-repo.txt", "not a video", 1.0, "train"),
    ("vidD", "3", "astronaut_75frames.mp4", "too positive", 3.5, "train"),
    ("vidD", "4", "astronaut_75frames.mp4", "   ", 1.0, "train"),
    ("vidD", "5", "astronaut_75frames.mp4", "odd split", 1.0, "holdout"),
    ("vidD", "6", "astronaut_75frames.mp4", "typo in the label", "abc", "train"),
]


def test_bad_clips_fail_by_default_naming_clip_and_file(tmp_path, media, capsys):
    root = make_mmsa(tmp_path / "ds", media, BAD)
    with pytest.raises(IngestError) as err:
        ingest_mmsa(root, tmp_path / "m.tsv", tmp_path / "x.tsv")
    msg = str(err.value)
    assert "6 clip(s)" in msg
    assert "vidD_6" in msg and "label 'abc' is not a number" in msg
    assert "vidD_1" in msg and "Raw/vidD/1.mp4" in msg and "does not exist" in msg
    assert "vidD_2" in msg and "cannot be decoded" in msg
    assert not (tmp_path / "m.tsv").exists()
    assert "train 2, valid 1, test 1" in capsys.readouterr().err


def test_bad_clips_excluded_with_reasons(tmp_path, media):
    root = make_mmsa(tmp_path / "ds", media, BAD)
    kept, rejected = ingest_mmsa(
        root, tmp_path / "m.tsv", tmp_path / "x.tsv", on_bad_clip="exclude"
    )
    assert len(kept) == 4
    excluded = pd.read_csv(tmp_path / "x.tsv", sep="\t").set_index("clip_id")
    assert sorted(excluded.index) == [f"vidD_{n}" for n in range(1, 7)]
    assert "does not exist" in excluded.loc["vidD_1", "reason"]
    assert "cannot be decoded" in excluded.loc["vidD_2", "reason"]
    assert "[-3, 3]" in excluded.loc["vidD_3", "reason"]
    assert "empty transcript" in excluded.loc["vidD_4", "reason"]
    assert "unknown split" in excluded.loc["vidD_5", "reason"]
    assert excluded.loc["vidD_6", "reason"] == "label 'abc' is not a number"


def test_truncated_video_is_rejected(tmp_path, media):
    root = make_mmsa(tmp_path / "ds", media, GOOD)
    clip = root / "Raw" / "vidA" / "2.mp4"
    clip.write_bytes(clip.read_bytes()[:4000])
    _, rejected = ingest_mmsa(root, tmp_path / "m.tsv", tmp_path / "x.tsv", on_bad_clip="exclude")
    assert [r.clip.clip_id for r in rejected] == ["vidA_2"]
    assert "vidA/2.mp4" in rejected[0].reason


def test_missing_split_is_an_error(tmp_path, media):
    root = make_mmsa(tmp_path / "ds", media, GOOD[:2])
    with pytest.raises(IngestError, match="no usable clips in split"):
        ingest_mmsa(root, tmp_path / "m.tsv", tmp_path / "x.tsv")


def test_no_label_csv(tmp_path):
    with pytest.raises(IngestError, match="no label.csv"):
        read_mmsa(tmp_path)


def test_real_mmsa_label_file_with_id_column(tmp_path, realdata):
    # The real MOSI MMSA label file carries `id,text,label,mode`.
    shutil.copy(need(realdata / "mosi" / "mmsa_style_label.csv"), tmp_path / "label.csv")
    clips, refused = read_mmsa(tmp_path)
    assert not refused
    assert len(clips) == 2195
    counts = pd.Series([c.split for c in clips]).value_counts().to_dict()
    assert counts == {"train": 1281, "valid": 229, "test": 685}
    first = clips[0]
    assert (first.clip_id, first.video_id) == ("03bSnISJMiM_1", "03bSnISJMiM")
    assert first.media.endswith("Raw/03bSnISJMiM/1.mp4")


def test_real_mosei_mmsa_label_file(tmp_path, realdata):
    shutil.copy(need(realdata / "mosei" / "mmsa_style_label.csv"), tmp_path / "label.csv")
    clips, refused = read_mmsa(tmp_path)
    assert not refused
    counts = pd.Series([c.split for c in clips]).value_counts().to_dict()
    assert counts == {"train": 16274, "valid": 1861, "test": 4653}
    assert len({c.clip_id for c in clips}) == len(clips)


def test_normalise_text():
    assert normalise_text("  ANYHOW it\twas\n REALLY good ") == "anyhow it was really good"
