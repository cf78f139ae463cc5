"""The streamed statistics fit (thne/features/streamed_fit.py) gives Normaliser.fit's bits."""

import weakref

import numpy as np
import pytest

from thne.features.normalise import Normaliser
from thne.features.streamed_fit import fit_streamed


def sequences(dim, n_clips, seed, presence=None, constant=None):
    """Float32 clips of 0 to 300 rows, values from 1e-6 to 1e6, and in about half of the clips'
    columns a row of 1e20 followed by one of -1e20: the pair cancels, and what is summed
    before it is lost, so summed in another order (each clip's rows first, or pairwise) the
    statistics differ by far more than float32's last bit."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_clips):
        n = int(rng.integers(0, 300))
        x = rng.standard_normal((n, dim)) * 10.0 ** rng.integers(-6, 7, (n, dim))
        if presence is not None:
            x[:, presence] = rng.random(n) < 0.7
            x[x[:, presence] == 0] = 0.0
        rows = np.flatnonzero(x[:, presence] > 0) if presence is not None else np.arange(n)
        for col in range(dim):
            if col not in (presence, constant) and len(rows) >= 2 and rng.random() < 0.5:
                i, j = np.sort(rng.choice(rows, 2, replace=False))
                x[i, col], x[j, col] = 1e20, -1e20
        if constant is not None:
            x[:, constant] = 3.25
        out.append(x.astype(np.float32))
    return out


def assert_same_bits(streamed, fitted):
    assert streamed.presence == fitted.presence
    for name in ("mean", "std"):
        a, b = getattr(streamed, name), getattr(fitted, name)
        assert a.dtype == b.dtype == np.float32
        assert a.tobytes() == b.tobytes(), name


def fits(seqs, names):
    return fit_streamed(lambda: iter(seqs), names), Normaliser.fit(seqs, names)


@pytest.mark.parametrize("dim", [2, 3, 35, 74])
@pytest.mark.parametrize("seed", [0, 1])
def test_plain_columns(dim, seed):
    seqs = sequences(dim, 40, seed)
    assert_same_bits(*fits(seqs, [f"f{i}" for i in range(dim)]))


@pytest.mark.parametrize("channel", ["face_detected", "audio_present"])
def test_presence_channel_and_constant_column(channel):
    """Rows with the channel off are left out of the statistics; a constant column gets std 1."""
    names = ["x0", channel, "x2", "x3", "x4"]
    seqs = sequences(5, 30, 2, presence=1, constant=3)
    streamed, fitted = fits(seqs, names)
    assert_same_bits(streamed, fitted)
    assert fitted.presence == 1 and fitted.std[3] == 1.0


def test_presence_channel_never_on_keeps_every_row():
    names = ["face_detected", "x1", "x2"]
    seqs = [np.c_[np.zeros(n), np.random.default_rng(n).normal(size=(n, 2))].astype(np.float32)
            for n in (4, 0, 9)]  # fmt: skip
    assert_same_bits(*fits(seqs, names))


def test_one_column_is_fitted_as_before():
    """numpy sums one column pairwise, not row by row: Normaliser.fit does it."""
    seqs = sequences(1, 60, 3)
    assert_same_bits(*fits(seqs, ["x"]))


def test_holds_one_sequence_at_a_time():
    seqs = sequences(4, 10, 4)
    passes, given, alive = [], [], []

    def read():
        passes.append(0)
        for x in seqs:
            alive.append(sum(r() is not None for r in given))
            copy = x.copy()
            given.append(weakref.ref(copy))
            yield copy
            del copy

    assert_same_bits(fit_streamed(read, list("abcd")), Normaliser.fit(seqs, list("abcd")))
    # A look at the first clip for its width, then a pass for the mean, one for the spread.
    assert len(passes) == 3
    assert max(alive) <= 1  # the clip just used, if anything still holds it


def test_no_sequences_is_an_error():
    with pytest.raises(ValueError, match="no sequences"):
        fit_streamed(lambda: iter([]), ["a", "b"])
