"""The byte counts behind the README's memory figures (benchmarks/memory.py): the synthetic
MOSEI- and MOSI-shaped splits, built by the real split_tensors, take the bytes the figures
are computed from."""

import sys

import pytest

from conftest import REPO


@pytest.mark.parametrize("name", ["mosei", "mosi"])
def test_split_bytes_match_the_figures(name):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import memory

    shape = memory.SHAPES[name]
    # Label 4 + tokens and mask 2 x 8 x 50 + steps 4 x 500 x (35 + 74) + lengths 2 x 8.
    assert memory.padded_bytes_per_clip(shape) == 218_820
    n = 5
    split, visual, acoustic = memory.synthetic_split(shape, n)
    assert split.visual.shape == (n, 500, 35) and split.acoustic.shape == (n, 500, 74)
    assert memory.tensor_bytes(split) == n * 218_820
    # Raw rows: float32, at 30 and 100 Hz over the clip's seconds (the first: 500 / 30 + 1).
    assert visual[0].nbytes == 4 * 530 * 35 and acoustic[0].nbytes == 4 * 1766 * 74
    # Mean raw bytes per clip: 7.3 s x (30 x 35 + 100 x 74) values x 4 bytes.
    assert memory.raw_bytes_per_clip(shape) == pytest.approx(4 * 7.3 * (30 * 35 + 100 * 74))
    total = sum(shape.clips.values()) * 218_820 / 2**30
    assert total == pytest.approx({"mosei": 4.66, "mosi": 0.448}[name], abs=0.01)


@pytest.mark.parametrize(
    ("name", "before", "no_stats", "cpu", "gpu"),
    [("mosei", 12.17, 18.40, 4.72, 2.26), ("mosi", 1.13, 1.54, 0.51, 0.18)],
)
def test_host_peaks_of_loading(name, before, no_stats, cpu, gpu):
    sys.path.insert(0, str(REPO / "benchmarks"))
    import memory

    shape = memory.SHAPES[name]
    # Mean rows of a clip: Facet never reaches the cap (11.6 s x 30 Hz < 500); COVAREP does
    # from 5 s on: (100 x (5^2 - 3^2) / 2 + 500 x 6.6) / 8.6.
    assert memory.mean_rows(shape, 30.0, capped=True) == pytest.approx(30 * 7.3)
    assert memory.mean_rows(shape, 100.0, capped=True) == pytest.approx(4100 / 8.6)
    n, train = sum(shape.clips.values()), shape.clips["train"]
    raw = n * 4 * 7.3 * (30 * 35 + 100 * 74)
    total = {
        k: sum(v.values()) / 2**30
        for k, v in {
            "before": memory.host_peak_before(shape),
            "no_stats": memory.host_peak_before(shape, stats_files=False),
            "cpu": memory.host_peak_after(shape, gpu=False),
            "gpu": memory.host_peak_after(shape, gpu=True),
        }.items()
    }
    # Before: the raw rows (still resident), every padded tensor and a copy of the train
    # acoustic array; without statistics files, the raw rows and the fit's two float64 arrays.
    train_acoustic = train * 500 * 74 * 4
    assert total["before"] * 2**30 == pytest.approx(raw + n * 250 + n * 218_820 + train_acoustic)
    assert total["no_stats"] * 2**30 == pytest.approx(raw + n * 250 + 4 * train * 4 * 730 * 74)
    # Now: the padded tensors and a fingerprint block on the CPU; on a GPU the train acoustic
    # array, the token arrays and one clip.
    assert total["cpu"] * 2**30 == n * 218_820 + 64 * 2**20
    assert total["gpu"] * 2**30 == pytest.approx(
        train_acoustic + n * 250 + 4 * (500 / 30 + 1) * (30 * 35 + 100 * 74)
    )
    assert total == pytest.approx(
        {"before": before, "no_stats": no_stats, "cpu": cpu, "gpu": gpu}, abs=0.005
    )


def test_the_model_is_what_the_loader_holds(tmp_path):
    """On a small set of the same make-up, the loader's padded tensors take the bytes the model
    counts (every split's on the CPU; the train acoustic array is the largest for a GPU), and
    the measuring child loads it both ways."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    import memory

    from thne.train.data import load_dataset

    shape = memory.Shape(clips={"train": 6, "valid": 2, "test": 3}, max_frames=40)
    root = memory.write_synthetic_set(shape, tmp_path / "set")
    files = [root / n for n in ("manifest.tsv", "text.h5", "audio.h5", "visual.h5")]
    data = load_dataset(*files, max_frames=40)
    splits = sum(memory.tensor_bytes(s) for s in data.splits.values())
    assert splits == memory.host_peak_after(shape, gpu=False)["splits' tensors"]
    arrays = [getattr(s, m).nbytes for s in data.splits.values() for m in ("visual", "acoustic")]
    assert max(arrays) == memory.host_peak_after(shape, gpu=True)["train acoustic array"]
    for mode in ("before", "after-cpu", "after-gpu"):
        got = memory.child(mode, root, stats_files=mode != "before")
        assert got["peak"] >= got["before"] > 0 and got["wall_s"] > 0
