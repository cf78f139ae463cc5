import os
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from thne.data.manifest import Clip
from thne.data.shards import n_shards, shard_clips, video_ids
from thne.features.store import extract_to_h5, merge_h5, read_h5


def clips_of(n_videos, per_video=3):
    return [
        Clip(f"v{v:04d}_{k}", f"v{v:04d}", 0.0, 1.0, "train", 0.0, "t", f"v{v}.mp4")
        for v in range(n_videos)
        for k in range(per_video)
    ]


def test_shards_partition_whole_videos():
    """Every clip is in exactly one shard, and all clips of a video are in the same one, also
    when videos have different numbers of clips and the manifest interleaves them.

    Break caught: shards cut by clip count, which splits a video across two shards."""
    clips = clips_of(10)
    assert n_shards(clips, 4) == 3 and n_shards(clips, 100) == 1
    shards = [shard_clips(clips, k, 4) for k in range(3)]
    assert [len(s) for s in shards] == [12, 12, 6]
    assert [video_ids(s) for s in shards] == [
        [f"v{v:04d}" for v in range(0, 4)],
        [f"v{v:04d}" for v in range(4, 8)],
        [f"v{v:04d}" for v in range(8, 10)],
    ]
    with pytest.raises(ValueError, match="shard 3 does not exist"):
        shard_clips(clips, 3, 4)

    # Uneven videos (1 to 5 clips), in an interleaved manifest order.
    uneven = [
        Clip(f"u{v}_{k}", f"u{v}", 0.0, 1.0, "train", 0.0, "t", f"u{v}.mp4")
        for k in range(5)
        for v in range(7)
        if k <= v % 5
    ]
    shards = [shard_clips(uneven, k, 3) for k in range(n_shards(uneven, 3))]
    assert len(shards) == 3
    home: dict[str, int] = {}
    for k, shard in enumerate(shards):
        assert shard == [c for c in uneven if c in shard]  # manifest order kept
        for c in shard:
            assert home.setdefault(c.clip_id, k) == k, f"{c.clip_id} in two shards"
    assert sorted(home) == sorted(c.clip_id for c in uneven)
    for video in {c.video_id for c in uneven}:
        assert len({home[c.clip_id] for c in uneven if c.video_id == video}) == 1, video


def test_merge_joins_shards_and_refuses_mixtures(tmp_path):
    clips = clips_of(4, per_video=1)

    def write(path, part, names=("a", "b"), config=None):
        extract_to_h5(
            part,
            path,
            lambda c: (np.ones((2, len(names)), np.float32), np.array([0.0, 0.5], np.float32)),
            feature_names=list(names),
            extractor="x",
            config=config or {},
        )
        return path

    a = write(tmp_path / "0.h5", clips[:2])
    b = write(tmp_path / "1.h5", clips[2:])
    assert merge_h5([a, b], tmp_path / "all.h5") == 4
    assert sorted(read_h5(tmp_path / "all.h5").features) == [c.clip_id for c in clips]
    with pytest.raises(ValueError, match="another shard too"):
        merge_h5([a, a], tmp_path / "dup.h5")
    c = write(tmp_path / "2.h5", clips[2:], config={"hop": 1})
    with pytest.raises(ValueError, match="another extractor or configuration"):
        merge_h5([a, c], tmp_path / "mixed.h5")
    assert not (tmp_path / "dup.h5").exists() and not (tmp_path / "mixed.h5").exists()


def test_merge_keeps_every_frame_timestamp_and_exclusion(tmp_path):
    """The merged file holds each clip's features and timestamps as its shard wrote them, with
    both shards' exclusions and their reasons.

    Break caught: a merge that drops a clip's last frame (or its timestamps, or exclusions)."""
    clips = clips_of(6, per_video=1)

    def extract(clip):
        k = int(clip.video_id[1:])
        if k in (1, 4):
            raise ValueError(f"no audio stream in clip {k}")
        n = 3 + k  # every clip its own length and values
        feats = np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * k
        return feats, np.arange(n, dtype=np.float32) / n  # n frames over the 1 s clip

    parts = []
    for k, part in enumerate((clips[:3], clips[3:])):
        path = tmp_path / f"{k}.h5"
        extract_to_h5(
            part,
            path,
            extract,
            feature_names=["a", "b"],
            extractor="x",
            config={},
            on_bad_clip="exclude",
        )
        parts.append(path)
    assert merge_h5(parts, tmp_path / "all.h5") == 4
    merged = read_h5(tmp_path / "all.h5")
    assert merged.feature_names == ["a", "b"] and merged.extractor == "x"
    assert merged.excluded == [
        {"clip_id": "v0001_0", "reason": "ValueError: no audio stream in clip 1"},
        {"clip_id": "v0004_0", "reason": "ValueError: no audio stream in clip 4"},
    ]
    with h5py.File(tmp_path / "all.h5") as h5:
        for clip in clips:
            if clip.video_id in ("v0001", "v0004"):
                assert clip.clip_id not in h5
                continue
            feats, stamps = extract(clip)
            np.testing.assert_array_equal(h5[clip.clip_id]["features"][()], feats)
            np.testing.assert_array_equal(h5[clip.clip_id]["timestamps"][()], stamps)


@pytest.mark.slow
def test_mosei_size_manifest_plans_few_jobs(tmp_path):
    """3,228 videos and about 23k clips: hundreds of jobs, not tens of thousands."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from dag import mosei_size_workdir, plan

    cfg = mosei_size_workdir(tmp_path)
    assert 20000 < len(pd.read_csv(tmp_path / "data/mosei/manifest.tsv", sep="\t")) < 26000
    _, counts = plan(tmp_path, cfg, "features/mosei/audio.h5", "features/mosei/visual.h5")
    assert "ingest" not in counts  # the manifest above is taken as it is
    assert counts["audio_shard"] == counts["visual_shard"] == 202  # ceil(3228 / 16)
    # MOSEI's visual features come from OpenFace: one plan, one OpenFace call per shard.
    assert counts["openface_plan"] == 1 and counts["openface_shard"] == 202
    assert counts["audio_shard"] + counts["openface_shard"] <= 500
    assert counts["merge_features"] == 2

    _, counts = plan(tmp_path, cfg, "results/mosei/metrics.json")
    assert counts["train"] == counts["evaluate"] == 5 and counts["aggregate"] == 1
    assert counts["total"] <= 1000, counts


def test_parallel_workers_write_the_same_file(tmp_path):
    """A shard's threads run clips in parallel processes; the file and exclusions are the same."""
    from thne.features.audio import AudioConfig, extract_audio_features, feature_names

    clips = [
        Clip(f"d{k}", f"d{k // 2}", 0.0, 2.0, "train", 0.0, "t", str(p))
        for k, p in enumerate(sorted((REPO / "resources/demo/Raw").glob("demo0[12]/[123].mp4")))
    ]
    clips.append(Clip("bad", "bad", 0.0, 1.0, "train", 0.0, "t", str(tmp_path / "missing.mp4")))
    cfg = AudioConfig()
    ran_here = []

    def extract(clip):
        ran_here.append(os.getpid())  # in a child process this changes only the child's copy
        return extract_audio_features(clip.media, clip.start, clip.end, cfg)

    files = {}
    for workers in (1, 3):
        out = tmp_path / f"w{workers}.h5"
        excluded = extract_to_h5(
            clips,
            out,
            extract,
            feature_names=feature_names(cfg),
            extractor="librosa",
            config={},
            on_bad_clip="exclude",
            workers=workers,
        )
        assert [e.clip_id for e in excluded] == ["bad"]
        files[workers] = read_h5(out)
    assert len(files[1].features) == 6
    for clip_id, feats in files[1].features.items():
        np.testing.assert_array_equal(files[3].features[clip_id], feats)
    assert files[1].excluded == files[3].excluded
    # With 3 workers only the first clip ran in this process (before the workers forked).
    assert ran_here == [os.getpid()] * (len(clips) + 1)


def test_a_worker_that_dies_fails_the_stage(tmp_path):
    """A worker killed mid-clip (a crash, the OOM killer) is an error, not a hang."""
    import signal

    clips = [Clip(f"c{k}", f"c{k}", 0.0, 1.0, "train", 0.0, "t", f"c{k}.mp4") for k in range(4)]
    parent = os.getpid()

    def extract(clip):
        if os.getpid() != parent and clip.clip_id == "c2":
            os.kill(os.getpid(), signal.SIGKILL)
        return np.zeros((2, 1), np.float32), np.array([0.0, 0.5], np.float32)

    with pytest.raises(RuntimeError, match="worker process ended abruptly"):
        extract_to_h5(
            clips,
            tmp_path / "x.h5",
            extract,
            feature_names=["f"],
            extractor="t",
            config={},
            workers=2,
        )
    assert not (tmp_path / "x.h5").exists()
