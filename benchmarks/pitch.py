"""Pitch trackers side by side: CPU time per audio second, and agreement with pYIN.

Each tracker runs on the same mono 16 kHz signals, on thne's frame grid (one frame every
``hop_seconds``, frame i centred at i x hop) between the config's ``fmin`` and ``fmax``:

- ``pyin``: ``librosa.pyin`` as thne ran it by default until this comparison (its reference);
- ``yin``: ``librosa.yin`` (no voicing decision of its own: its rows leave voicing blank);
- ``praat``: Praat's autocorrelation method (``Sound.to_pitch_ac``) through praat-parselmouth;
- ``dio``, ``harvest``: WORLD's trackers through pyworld (DIO refined by StoneMask).

A tracker whose package is not installed is skipped with a note. Agreement with pYIN, over
all frames of all clips of a set:

- voicing agreement: the share of frames both call voiced or both unvoiced;
- gross pitch error: of the frames both call voiced, the share more than 20 % apart;
- median cents: of those frames, the median of |1200 log2(f / f_pyin)|.

CPU time is ``time.process_time`` around the tracker call alone, after one warm-up call (so
librosa's numba compilation is not counted), with one BLAS thread; "stage x real time" is
the whole acoustic stage's speed per core (spectral groups plus the tracker, as
``thne.features.audio.frame_features`` computes them) at the shipped config.

Clip sets: the demo's clips (``resources/demo``) and the real CMU-MOSI segments of
``../shared/realdata/mosi`` (one video, one wav) when that folder is there.

    pip install praat-parselmouth pyworld     # the optional trackers
    python benchmarks/pitch.py [--demo-clips 120]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata" / "mosi"

# A tracker maps (signal, AudioConfig) to (f0 Hz [T], voiced bool [T] or None) on the grid.
Tracker = Callable[[np.ndarray, object], tuple[np.ndarray, np.ndarray | None]]


def n_frames(y: np.ndarray, cfg) -> int:
    return 1 + len(y) // cfg.hop_length


def on_grid(times: np.ndarray, f0: np.ndarray, n: int, hop_s: float) -> np.ndarray:
    """``f0`` sampled at ``times`` (s), moved to the nearest of ``n`` grid frames (i x hop_s)."""
    t = np.arange(n) * hop_s
    step = float(times[1] - times[0]) if len(times) > 1 else hop_s
    idx = np.clip(np.round((t - times[0]) / step), 0, len(f0) - 1).astype(int)
    out = f0[idx]
    # Grid frames outside the tracker's first and last frame have no estimate.
    out[(t < times[0] - hop_s / 2) | (t > times[-1] + hop_s / 2)] = 0.0
    return out


def _thne(tracker: str) -> Tracker:
    """A tracker as thne's acoustic stage runs it (its voicing decision: f0 > 0)."""

    def track(y: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray | None]:
        from thne.features.audio import pitch

        f0, _ = pitch(y, dataclasses.replace(cfg, pitch_tracker=tracker))
        return f0, f0 > 0

    return track


def track_yin(y: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray | None]:
    import librosa

    f0 = librosa.yin(
        y,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        sr=cfg.sample_rate,
        frame_length=cfg.pitch_frame_length,
        hop_length=cfg.hop_length,
        center=True,
    )
    return f0, None


def track_praat(y: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray | None]:
    import parselmouth

    pitch = parselmouth.Sound(y.astype(np.float64), cfg.sample_rate).to_pitch_ac(
        time_step=cfg.hop_seconds, pitch_floor=cfg.fmin, pitch_ceiling=cfg.fmax
    )
    f0 = on_grid(
        np.asarray(pitch.xs()), pitch.selected_array["frequency"], n_frames(y, cfg), cfg.hop_seconds
    )
    return f0, f0 > 0


def _world(method: str) -> Tracker:
    def track(y: np.ndarray, cfg) -> tuple[np.ndarray, np.ndarray | None]:
        import pyworld

        x = y.astype(np.float64)
        period = cfg.hop_seconds * 1000
        if method == "harvest":
            f0, t = pyworld.harvest(
                x, cfg.sample_rate, f0_floor=cfg.fmin, f0_ceil=cfg.fmax, frame_period=period
            )
        else:
            f0, t = pyworld.dio(
                x, cfg.sample_rate, f0_floor=cfg.fmin, f0_ceil=cfg.fmax, frame_period=period
            )
            f0 = pyworld.stonemask(x, f0, t, cfg.sample_rate)
        f0 = on_grid(t, f0, n_frames(y, cfg), cfg.hop_seconds)
        return f0, f0 > 0

    return track


TRACKERS: dict[str, tuple[str, Tracker]] = {
    "pyin": ("librosa", _thne("pyin")),
    "yin": ("librosa", track_yin),
    "thne-yin": ("thne", _thne("yin")),
    "praat": ("parselmouth", track_praat),
    "dio": ("pyworld", _world("dio")),
    "harvest": ("pyworld", _world("harvest")),
}


def agreement(ref: list[tuple], est: list[tuple]) -> dict[str, float]:
    """Voicing agreement, gross pitch error share and median cents of ``est`` against ``ref``
    over all frames of all clips (each a (f0, voiced) pair on the same grid)."""
    same, frames, gross, cents = 0, 0, 0, []
    for (rf, rv), (ef, ev) in zip(ref, est, strict=True):
        n = min(len(rf), len(ef))
        rf, rv, ef = rf[:n], rv[:n].astype(bool), ef[:n]
        ev = (ef > 0) if ev is None else ev[:n].astype(bool)
        both = rv & ev & (ef > 0) & (rf > 0)
        if est[0][1] is not None:
            same += int((rv == ev).sum())
        frames += n
        ratio = ef[both] / rf[both]
        gross += int((np.abs(ratio - 1) > 0.2).sum())
        cents += list(np.abs(1200 * np.log2(ratio)))
    return {
        "voicing": same / frames if est[0][1] is not None else float("nan"),
        "gpe": gross / max(len(cents), 1),
        "cents": float(np.median(cents)) if cents else float("nan"),
        "frames_both_voiced": len(cents),
    }


def load_sets(n_demo: int, sample_rate: int) -> dict[str, list[np.ndarray]]:
    from thne.data.manifest import read_manifest
    from thne.media import decode_audio

    sets: dict[str, list[np.ndarray]] = {}
    clips = read_manifest(REPO / "data" / "demo" / "manifest.tsv")[:n_demo]
    demo = [decode_audio(REPO / c.media, sample_rate, c.start, c.end) for c in clips]
    sets["demo"] = [y for y in demo if y is not None]
    real = [REALDATA / "Oz06ZWiO20M_6.mp4", REALDATA / "03bSnISJMiM_1.wav"]
    if all(p.is_file() for p in real):
        sets["mosi (real)"] = [decode_audio(p, sample_rate) for p in real]
    return sets


def timed(track: Tracker, signals: list[np.ndarray], cfg) -> tuple[list[tuple], float]:
    out, cpu = [], 0.0
    for y in signals:
        t0 = time.process_time()
        out.append(track(y, cfg))
        cpu += time.process_time() - t0
    return out, cpu


def stage_cpu(signals: list[np.ndarray], cfg) -> float:
    """CPU seconds of the acoustic stage's groups other than f0 and voicing, on ``signals``."""
    from thne.features.audio import frame_features

    spectral = dataclasses.replace(
        cfg, groups=tuple(g for g in cfg.groups if g not in ("f0", "voicing"))
    )
    frame_features(signals[0], spectral)  # librosa's first call loads its modules
    t0 = time.process_time()
    for y in signals:
        frame_features(y, spectral)
    return time.process_time() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-clips", type=int, default=120)
    parser.add_argument("--trackers", default=",".join(TRACKERS))
    args = parser.parse_args()

    from importlib.metadata import PackageNotFoundError, version

    from thne.features.audio import AudioConfig

    cfg = AudioConfig()
    sets = load_sets(args.demo_clips, cfg.sample_rate)
    warm = np.sin(2 * np.pi * 150 * np.arange(cfg.sample_rate) / cfg.sample_rate) * 0.1
    with threadpool_limits(limits=1, user_api="blas"):
        for name, signals in sets.items():
            seconds = sum(len(y) for y in signals) / cfg.sample_rate
            spectral = stage_cpu(signals, cfg)
            print(
                f"\n## {name}: {len(signals)} clips, {seconds:.1f} s of audio; spectral "
                f"groups {spectral / seconds * 1000:.2f} CPU-ms per audio second"
            )
            print(
                "| tracker | package | CPU ms / audio s | stage x real time | voicing agree |"
                " gross error | median cents |"
            )
            print("|---|---|---|---|---|---|---|")
            ref = None
            for key in args.trackers.split(","):
                package, track = TRACKERS[key]
                try:
                    pkg = (
                        f"{package} {version(package.replace('parselmouth', 'praat-parselmouth'))}"
                    )
                    track(warm.astype(np.float32), cfg)
                except (ImportError, PackageNotFoundError) as e:
                    print(f"| {key} | not installed ({e}) | | | | | |")
                    continue
                runs = [timed(track, signals, cfg) for _ in range(3)]
                est, _ = runs[0]
                cpu = statistics.median(c for _, c in runs)
                if key == "pyin":
                    ref = est
                ms = cpu / seconds * 1000
                speed = seconds / (cpu + spectral)
                if ref is None:
                    a = {"voicing": float("nan"), "gpe": float("nan"), "cents": float("nan")}
                else:
                    a = agreement(ref, est)
                print(
                    f"| {key} | {pkg} | {ms:.2f} | {speed:.0f}x | {a['voicing']:.3f} | "
                    f"{a['gpe']:.3f} | {a['cents']:.1f} |"
                )


if __name__ == "__main__":
    main()
