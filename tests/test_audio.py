import numpy as np
import pytest

from conftest import need
from thne.features.audio import AudioConfig, extract_audio_features, feature_names, frame_features
from thne.media import MediaError, decode_audio, probe

CFG = AudioConfig()


def test_feature_names_follow_groups():
    names = feature_names(CFG)
    assert names[:20] == [f"mfcc_{i}" for i in range(20)]
    assert names[20:] == ["rms", "zcr", "centroid", "f0_hz", "periodicity", "audio_present"]
    assert feature_names(AudioConfig(pitch_tracker="pyin"))[24] == "voiced_prob"
    assert feature_names(AudioConfig(groups=("rms", "zcr"))) == ["rms", "zcr", "audio_present"]
    with pytest.raises(ValueError, match="unknown audio feature groups"):
        AudioConfig(groups=("mfcc", "jitter"))
    with pytest.raises(ValueError, match="unknown pitch tracker 'crepe'"):
        AudioConfig(pitch_tracker="crepe")


def test_real_mosi_wav(realdata):
    wav = need(realdata / "mosi" / "03bSnISJMiM_1.wav")
    feats, ts = extract_audio_features(wav, 0.0, 3.3, CFG)
    names = feature_names(CFG)
    assert feats.dtype == np.float32 and feats.shape == (ts.shape[0], len(names))
    assert ts[0] == 0 and np.allclose(np.diff(ts), CFG.hop_seconds, atol=1e-5)
    assert abs(ts[-1] - 3.3) < 0.1  # one frame per hop over the whole clip
    col = dict(zip(names, feats.T, strict=True))
    voiced = col["f0_hz"] > 0
    assert (col["periodicity"][voiced] > 0.7).all()  # YIN's voicing decision
    assert voiced.mean() > 0.1  # it is speech
    assert 70 < np.median(col["f0_hz"][voiced]) < 400  # an adult speaking voice
    assert (col["f0_hz"][~voiced] >= 0).all() and np.isfinite(feats).all()
    assert (col["audio_present"] == 1).all()


def test_real_mosi_mp4_and_slicing(realdata):
    mp4 = need(realdata / "mosi" / "Oz06ZWiO20M_6.mp4")
    whole, _ = extract_audio_features(mp4, 0.0, 7.5, CFG)
    part, ts = extract_audio_features(mp4, 2.0, 4.0, CFG)
    assert abs(ts[-1] - 2.0) < 0.05
    # The slice's RMS matches the same stretch of the whole file (frame grids agree to a hop).
    rms = feature_names(CFG).index("rms")
    lo = int(2.0 / CFG.hop_seconds)
    assert np.corrcoef(part[5:-5, rms], whole[lo + 5 : lo + part.shape[0] - 5, rms])[0, 1] > 0.95


def test_sample_rate_and_channels_are_normalised(realdata):
    y = decode_audio(need(realdata / "mosi" / "03bSnISJMiM_1.wav"), 8000)
    assert y.ndim == 1 and abs(y.shape[0] / 8000 - 3.3) < 0.05
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.01


def test_video_without_audio_gives_zeros_and_flag(media):
    feats, ts = extract_audio_features(need(media / "astronaut_75frames.mp4"), 0.0, 3.0, CFG)
    assert feats.shape == (151, len(feature_names(CFG)))
    assert not feats.any()  # every channel zero, audio_present included
    assert probe(need(media / "astronaut_75frames.mp4")).has_audio is False


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(MediaError, match="does not exist"):
        extract_audio_features(tmp_path / "nope.mp4", 0, 1, CFG)
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    with pytest.raises(MediaError, match="bad.mp4"):
        extract_audio_features(bad, 0, 1, CFG)


@pytest.mark.parametrize("tracker", ["yin", "pyin"])
def test_pure_tone_pitch_and_loudness(tracker):
    cfg = AudioConfig(pitch_tracker=tracker)
    sr = cfg.sample_rate
    t = np.arange(sr) / sr
    quiet = (0.05 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    loud = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 0.1, sr).astype(np.float32)
    names = feature_names(cfg)
    fq, fl, fn = (frame_features(y, cfg) for y in (quiet, loud, noise))
    f0, rms = names.index("f0_hz"), names.index("rms")
    assert np.median(fq[5:-5, f0]) == pytest.approx(150, rel=0.01)
    assert np.median(fl[5:-5, f0]) == pytest.approx(300, rel=0.01)
    assert (fq[5:-5, f0] > 0).all() and (fn[:, f0] == 0).mean() > 0.9  # tone voiced, noise not
    assert np.median(fl[:, rms]) > 5 * np.median(fq[:, rms])


def test_yin_is_the_same_in_blocks_of_any_size(monkeypatch, realdata):
    import thne.features.pitch as pitch

    y = decode_audio(need(realdata / "mosi" / "Oz06ZWiO20M_6.mp4"), CFG.sample_rate)
    kw = {"sr": CFG.sample_rate, "fmin": 65.0, "fmax": 500.0, "frame_length": 1024}
    whole = pitch.yin(y, hop_length=CFG.hop_length, **kw)
    monkeypatch.setattr(pitch, "BLOCK", 7)
    blocks = pitch.yin(y, hop_length=CFG.hop_length, **kw)
    assert len(whole[0]) == 1 + len(y) // CFG.hop_length > 7 * 40
    # The FFT batches rows in SIMD lanes, so a frame's last bits depend on its neighbours in
    # the block (the block size is fixed, so the features of one machine are fixed too).
    np.testing.assert_array_equal(whole[0] > 0, blocks[0] > 0)
    for a, b in zip(whole, blocks, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)  # float32 FFTs


def test_yin_agrees_with_pyin_on_real_speech(realdata):
    """The default tracker against librosa's pYIN on two real CMU-MOSI segments: the figures
    benchmarks/pitch.py prints (voicing agreement 0.82, gross errors 2 %, 8 cents)."""
    pyin = AudioConfig(groups=("f0",), pitch_tracker="pyin")
    yin = AudioConfig(groups=("f0",))
    agree, frames, cents = 0, 0, []
    for name in ("Oz06ZWiO20M_6.mp4", "03bSnISJMiM_1.wav"):
        y = decode_audio(need(realdata / "mosi" / name), CFG.sample_rate)
        ref, est = frame_features(y, pyin)[:, 0], frame_features(y, yin)[:, 0]
        agree += int(((ref > 0) == (est > 0)).sum())
        frames += len(ref)
        voiced = (ref > 0) & (est > 0)
        cents += list(np.abs(1200 * np.log2(est[voiced] / ref[voiced])))
    assert agree / frames > 0.78 and len(cents) > 150
    assert np.median(cents) < 15 and np.mean(np.array(cents) > 1200 * np.log2(1.2)) < 0.05


# librosa's compiled code: every job its own numba cache (thne/features/numba_cache.py).


def _shard_job(manifest, out, shard, cache_root, workers=1):
    import os
    import subprocess
    import sys

    env = {**os.environ, "THNE_CACHE_DIR": str(cache_root)}
    env.pop("NUMBA_CACHE_DIR", None)
    cmd = [sys.executable, "-m", "thne.cli", "audio", "--manifest", str(manifest)]
    cmd += ["--out", str(out), "--threads", str(workers)]
    if shard is not None:
        cmd += ["--shard", str(shard), "--shard-size", "1"]
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def _features(paths):
    import h5py

    out = {}
    for path in paths:
        with h5py.File(path, "r") as h5:
            for clip in h5:
                out[clip] = h5[clip]["features"][()].tobytes()
    return out


# Under pytest-xdist, tests of the cold cache share a group: one worker runs them one after
# another, so no two of them compile at once beside the four jobs this one starts.
@pytest.mark.slow
@pytest.mark.xdist_group("numba_cache")
def test_four_shard_jobs_on_a_cold_cache_equal_a_sequential_run(tmp_path):
    """Four audio shard jobs started at once on a cold cache, then the same shards one after
    another on the cache they published, then one job with 2 workers: byte-identical features.
    Checked by hand: with the private caches removed (the four jobs writing the installed
    package's cache at once, as before), the published-copy check fails. The byte comparison
    alone cannot be relied on to catch the race, which depends on timing; it guards that a
    cache copied from another job gives the same features as compiling afresh."""
    from conftest import REPO
    from thne.data.manifest import Clip, write_manifest
    from thne.features.numba_cache import cache_key

    clips = [
        Clip(f"demo0{v}_1", f"demo0{v}", 0.0, 2.0, "train", 0.0, "x", str(need(media)))
        for v in (1, 2, 3, 4)
        if (media := REPO / f"resources/demo/Raw/demo0{v}/1.mp4")
    ]
    manifest = tmp_path / "manifest.tsv"
    write_manifest(manifest, clips)
    cache = tmp_path / "cache"

    at_once = [_shard_job(manifest, tmp_path / f"a{s}.h5", s, cache) for s in range(4)]
    for job in at_once:
        assert job.wait(timeout=600) == 0, job.stderr.read()
    # Published once, by one atomic rename, and no job's private folder left behind.
    assert [p.name for p in (cache / "numba").iterdir()] == [cache_key()]

    for s in range(4):
        job = _shard_job(manifest, tmp_path / f"b{s}.h5", s, cache)
        assert job.wait(timeout=600) == 0, job.stderr.read()
    both = _shard_job(manifest, tmp_path / "c.h5", None, cache, workers=2)
    assert both.wait(timeout=600) == 0, both.stderr.read()

    cold = _features(tmp_path / f"a{s}.h5" for s in range(4))
    assert len(cold) == 4
    assert _features(tmp_path / f"b{s}.h5" for s in range(4)) == cold
    assert _features([tmp_path / "c.h5"]) == cold
