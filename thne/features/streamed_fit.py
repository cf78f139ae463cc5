""":meth:`Normaliser.fit <thne.features.normalise.Normaliser.fit>`'s statistics, bit for bit,
from sequences read one at a time.

``Normaliser.fit`` stacks every train sequence into one float64 array: for MOSEI's acoustic
train clips that is 3.3 GiB of float32 rows, a 6.6 GiB float64 copy and as much again for
``std``'s deviations. Here the sequences are read twice (once for the mean, once for the
spread) and only one is held at a time.

The sums are the same float sums: numpy reduces a C-ordered [N, D] array over axis 0 by adding
its rows one after another, in order (only a reduction along the last axis is pairwise), so
adding each sequence's rows to the running sum the same way gives the same bits.
``tests/test_streamed_fit.py`` checks this against ``Normaliser.fit``. With one column the
reduction is pairwise, so such a file is fitted by ``Normaliser.fit`` itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np

from thne.features.normalise import PRESENCE_CHANNELS, Normaliser
from thne.features.reader import FeatureReader


def fit_stats(
    manifest: str | os.PathLike, features: str | os.PathLike, out_path: str | os.PathLike
) -> Normaliser:
    """Fit on the train clips of ``manifest`` found in ``features``, one clip in memory at a
    time, and write the statistics (``thne stats``)."""
    from thne.data.manifest import read_manifest

    with FeatureReader(features) as reader:
        train = [
            c.clip_id for c in read_manifest(manifest) if c.split == "train" and c.clip_id in reader
        ]
        if not train:
            raise ValueError(f"{features}: no train clips of {manifest} in it")
        norm = fit_streamed(lambda: map(reader.read, train), reader.feature_names)
    norm.save(out_path, reader.feature_names, split="train", n_clips=len(train))
    return norm


def fit_streamed(read: Callable[[], Iterable[np.ndarray]], names: list[str]) -> Normaliser:
    """``Normaliser.fit(list(read()), names)``, calling ``read`` twice and keeping one of its
    sequences at a time."""
    presence = next((names.index(n) for n in PRESENCE_CHANNELS if n in names), None)
    first = next(iter(read()), None)
    if first is None:
        raise ValueError("no sequences to fit statistics on")
    if first.ndim != 2 or first.shape[1] < 2:
        return Normaliser.fit(list(read()), names)
    dim = first.shape[1]
    del first

    # Pass 1: the sums of every row and of the rows whose presence channel is on; fit keeps
    # only the latter when there are any.
    total, on = np.zeros(dim), np.zeros(dim)
    n_total = n_on = 0
    for x in read():
        x = x.astype(np.float64)
        total, n_total = _add_rows(total, x), n_total + len(x)
        if presence is not None:
            kept = x[x[:, presence] > 0]
            on, n_on = _add_rows(on, kept), n_on + len(kept)
    present_only = presence is not None and n_on > 0
    sums, n = (on, n_on) if present_only else (total, n_total)
    mean = sums / n

    # Pass 2: the squared deviations from that mean, as np.std computes them.
    squares = np.zeros(dim)
    for x in read():
        x = x.astype(np.float64)
        if present_only:
            x = x[x[:, presence] > 0]
        d = x - mean
        squares = _add_rows(squares, np.multiply(d, d, out=d))
    std = np.sqrt(squares / n)

    # From here as Normaliser.fit finishes.
    std[std < 1e-8] = 1.0
    if presence is not None:
        mean[presence], std[presence] = 0.0, 1.0
    return Normaliser(mean.astype(np.float32), std.astype(np.float32), presence)


def _add_rows(running: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``running`` plus each of ``rows`` in turn, by numpy's own axis-0 reduction (so in the
    order, and with the start from 0.0, that it sums a whole stacked array)."""
    return np.concatenate([running[None], rows]).sum(axis=0)
