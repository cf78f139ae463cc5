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
