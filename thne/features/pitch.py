"""Pitch with YIN (de Cheveigné and Kawahara, 2002, JASA 111(4)), with its voicing decision.

YIN's steps, each numbered as in the paper, on frames of ``frame_length`` samples centred every
``hop_length`` samples (the grid of thne's other acoustic features):

2. the difference function d(tau), over an integration window of ``frame_length - max_period``
   samples, from energies and an FFT cross-correlation;
3. the cumulative mean normalized difference d'(tau) (Eq. 8);
4. the absolute threshold: the smallest lag with a local minimum of d' below ``threshold``,
   else the lag of d''s global minimum;
5. parabolic interpolation of d' around that lag.

d' at the chosen lag is YIN's aperiodicity: a frame is voiced where it is below
``voicing_threshold``, and ``periodicity`` is 1 - d' (clipped to [0, 1]). The paper's 0.1
picks the lag; as a voicing decision it calls only 17 % of the demo's frames voiced against
pYIN's 42 %. At 0.3 (the default) YIN and pYIN agree on 87 % of the demo's frames and 82 % of
two real CMU-MOSI segments' (``benchmarks/pitch.py``), more than Praat's or WORLD's trackers
do. Unlike ``librosa.yin`` this returns the aperiodicity as well, and unlike ``librosa.pyin`` it
runs no probabilistic tracking (7 to 8 times cheaper).
"""

from __future__ import annotations

import numpy as np

# yin: this module's (thne's default); pyin: librosa.pyin, about 10x the CPU time of every other
# acoustic group together. The comparison behind the default: benchmarks/pitch.py.
PITCH_TRACKERS = ("yin", "pyin")
DEFAULT_PITCH_TRACKER = "yin"
BLOCK = 512


def yin(
    y: np.ndarray,
    *,
    sr: int,
    fmin: float,
    fmax: float,
    frame_length: int,
    hop_length: int,
    threshold: float = 0.1,
    voicing_threshold: float = 0.3,
) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz (0 where unvoiced, so ``f0 > 0`` is the voicing decision) and the periodicity
    of each frame of ``y`` (frame i centred on sample i x ``hop_length``): two arrays of
    1 + len(y) // hop_length values."""
    min_period = max(1, int(np.floor(sr / fmax)))
    max_period = min(int(np.ceil(sr / fmin)), frame_length // 2)
    padded = np.pad(np.asarray(y, dtype=np.float32), frame_length // 2)
    starts = np.arange(1 + len(y) // hop_length) * hop_length
    padded = np.pad(padded, (0, max(0, starts[-1] + frame_length - len(padded))))
    windows = np.lib.stride_tricks.sliding_window_view(padded, frame_length)
    # Blocks of frames keep the FFT buffers small on long recordings (a few MB a block). The
    # FFTs run in float32, as the samples are; energies are summed in float64.
    parts = [
        _yin_frames(windows[starts[i : i + BLOCK]], sr, min_period, max_period, threshold)
        for i in range(0, len(starts), BLOCK)
    ]
    f0, aperiodicity = (np.concatenate(p) for p in zip(*parts, strict=True))
    f0 = np.where(aperiodicity < voicing_threshold, f0, 0.0)
    return f0, np.clip(1.0 - aperiodicity, 0.0, 1.0)


def _yin_frames(
    frames: np.ndarray, sr: int, min_period: int, max_period: int, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """f0 (Hz, every frame) and aperiodicity d' at the chosen lag of ``frames`` [N, length]."""
    import scipy.fft  # here: the CLI imports this module for PITCH_TRACKERS at every start

    n_frames, frame_length = frames.shape
    window = frame_length - max_period
    # Step 2: d(tau) = sum_j x_j^2 + sum_j x_{j+tau}^2 - 2 sum_j x_j x_{j+tau}, j < window.
    n_fft = 1 << int(np.ceil(np.log2(frame_length + window)))
    spectrum = scipy.fft.rfft(frames, n_fft, axis=1)
    head = scipy.fft.rfft(frames[:, :window], n_fft, axis=1)
    corr = scipy.fft.irfft(spectrum * np.conj(head), n_fft, axis=1)[:, : max_period + 1]
    squares = np.square(frames, dtype=np.float64)
    energy = np.cumsum(np.concatenate([np.zeros((n_frames, 1)), squares], axis=1), axis=1)
    lagged = energy[:, window : window + max_period + 1] - energy[:, : max_period + 1]
    diff = np.maximum(energy[:, [window]] + lagged - 2 * corr, 0.0)

    # Step 3 (Eq. 8): d'(0) = 1, d'(tau) = d(tau) / ((1 / tau) sum_{j=1..tau} d(j)).
    lags = np.arange(1, max_period + 1)
    mean = np.cumsum(diff[:, 1:], axis=1) / lags
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = np.divide(diff[:, 1:], mean, out=np.ones_like(mean), where=mean > 0)

    # Step 4: the first local minimum below the threshold in [min_period, max_period).
    d = cmnd[:, min_period:max_period]
    inner = np.zeros_like(d, dtype=bool)
    inner[:, 1:-1] = (d[:, 1:-1] <= d[:, :-2]) & (d[:, 1:-1] < d[:, 2:])
    inner[:, 0] = d[:, 0] < d[:, 1]
    below = inner & (d < threshold)
    idx = np.where(below.any(axis=1), below.argmax(axis=1), d.argmin(axis=1))
    rows = np.arange(n_frames)
    aperiodicity = d[rows, idx]

    # Step 5: the vertex of the parabola through d' at the lag and its two neighbours.
    lag = idx + min_period
    left, mid = cmnd[rows, lag - 1], cmnd[rows, lag]
    right = cmnd[rows, np.minimum(lag + 1, max_period)]
    curve = left - 2 * mid + right
    shift = np.divide(left - right, 2 * curve, out=np.zeros_like(mid), where=np.abs(curve) > 0)
    period = lag + np.clip(shift, -1.0, 1.0)

    return sr / period, aperiodicity
