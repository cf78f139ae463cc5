"""Acoustic features with librosa: frame-level descriptors of a clip's speech.

The feature groups and the window and hop come from the config. Every group is computed on the
same frame grid (centered frames of ``win_seconds``, one every ``hop_seconds``), so the
columns line up in time.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib.metadata import version

import librosa
import numpy as np
from threadpoolctl import threadpool_limits

from thne.features.pitch import DEFAULT_PITCH_TRACKER, PITCH_TRACKERS, yin
from thne.features.store import Extractor
from thne.media import decode_audio

AUDIO_GROUPS = ("mfcc", "rms", "zcr", "centroid", "f0", "voicing")


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = 16000
    win_seconds: float = 0.064
    hop_seconds: float = 0.02
    n_mfcc: int = 20
    groups: tuple[str, ...] = AUDIO_GROUPS
    fmin: float = 65.0
    fmax: float = 500.0
    pitch_tracker: str = DEFAULT_PITCH_TRACKER
    # pYIN pitch-bin width in semitones: 0.25 is 3-4x faster than librosa's 0.1 and moves the
    # mean f0 of speech by well under a semitone.
    f0_resolution: float = 0.25

    def __post_init__(self) -> None:
        unknown = set(self.groups) - set(AUDIO_GROUPS)
        if unknown:
            raise ValueError(
                f"unknown audio feature groups {sorted(unknown)}; known: {AUDIO_GROUPS}"
            )
        if "voicing" in self.groups and "f0" not in self.groups:
            raise ValueError(
                "audio feature group 'voicing' needs 'f0' (both come from the pitch tracker)"
            )
        if self.pitch_tracker not in PITCH_TRACKERS:
            raise ValueError(
                f"unknown pitch tracker {self.pitch_tracker!r}; known: {PITCH_TRACKERS}"
            )

    @property
    def n_fft(self) -> int:
        return int(round(self.win_seconds * self.sample_rate))

    @property
    def hop_length(self) -> int:
        return int(round(self.hop_seconds * self.sample_rate))

    @property
    def pitch_frame_length(self) -> int:
        """The pitch trackers' frame: the window, or two periods of ``fmin`` if longer."""
        return max(self.n_fft, 2 * int(self.sample_rate / self.fmin) + 2)


def feature_names(cfg: AudioConfig) -> list[str]:
    names: list[str] = []
    for group in cfg.groups:
        if group == "mfcc":
            names += [f"mfcc_{i}" for i in range(cfg.n_mfcc)]
        elif group == "f0":
            names.append("f0_hz")
        elif group == "voicing":
            # YIN's periodicity (1 - aperiodicity) or pYIN's voiced probability: both in [0, 1],
            # but not the same quantity, so not the same name.
            names.append("periodicity" if cfg.pitch_tracker == "yin" else "voiced_prob")
        else:
            names.append(group)
    # Last channel: 1 where the clip has an audio track, 0 where its features are zeros.
    return names + ["audio_present"]


def frame_features(y: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Features of mono signal ``y`` at ``cfg.sample_rate``: float32 [T, D] (D without the
    ``audio_present`` channel), computed with one BLAS thread.

    BLAS splits the mel projection's sums by its thread count, which Snakemake sets to the
    job's threads (OPENBLAS_NUM_THREADS and the like) and lowers to fit ``--cores``: with two
    threads the MFCCs differed from one thread's by up to 1.5e-5, so one config gave other
    features on another machine. A job's threads work on clips side by side instead."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _frame_features(y, cfg)


def _frame_features(y: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    sr, n_fft, hop = cfg.sample_rate, cfg.n_fft, cfg.hop_length
    if y.size < n_fft:
        y = np.pad(y, (0, n_fft - y.size))
    cols: list[np.ndarray] = []
    spec = None
    if {"mfcc", "centroid"} & set(cfg.groups):
        spec = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True)) ** 2
    for group in cfg.groups:
        if group == "mfcc":
            mel = librosa.feature.melspectrogram(S=spec, sr=sr, n_mels=40)
            cols.append(librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=cfg.n_mfcc))
        elif group == "rms":
            cols.append(librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop))
        elif group == "zcr":
            cols.append(librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop))
        elif group == "centroid":
            cols.append(librosa.feature.spectral_centroid(S=np.sqrt(spec), sr=sr))
        elif group == "f0":
            f0, voicing = pitch(y, cfg)
            cols.append(f0[None, :])
            if "voicing" in cfg.groups:
                cols.append(voicing[None, :])
    n = min(c.shape[1] for c in cols)
    return np.concatenate([c[:, :n] for c in cols], axis=0).T.astype(np.float32)


def pitch(y: np.ndarray, cfg: AudioConfig) -> tuple[np.ndarray, np.ndarray]:
    """f0 in Hz (0 where unvoiced) and the voicing column of each frame."""
    frame_length = cfg.pitch_frame_length
    if cfg.pitch_tracker == "yin":
        return yin(
            y,
            sr=cfg.sample_rate,
            fmin=cfg.fmin,
            fmax=cfg.fmax,
            frame_length=frame_length,
            hop_length=cfg.hop_length,
        )
    f0, _, vprob = librosa.pyin(
        y,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
        sr=cfg.sample_rate,
        frame_length=frame_length,
        hop_length=cfg.hop_length,
        center=True,
        resolution=cfg.f0_resolution,
    )
    # pYIN marks unvoiced frames NaN; 0 Hz keeps the tensor finite and is unambiguous next to
    # the voicing probability.
    return np.nan_to_num(f0, nan=0.0), vprob


def warm_up(cfg: AudioConfig) -> None:
    """Compile librosa's numba code for ``cfg`` on a second of a tone, in this process: forked
    workers then inherit it, whether or not the first clip of a job can be decoded."""
    t = np.arange(cfg.sample_rate, dtype=np.float32) / cfg.sample_rate
    frame_features(0.1 * np.sin(2 * np.pi * 220.0 * t, dtype=np.float32), cfg)


def extract_audio_features(
    path: str | os.PathLike, start: float, end: float, cfg: AudioConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Features [T, D] and timestamps [T] (seconds from clip start) of the clip [start, end).

    A file without an audio track yields zero features with ``audio_present`` 0, on the same
    frame grid a track would have had.
    """
    y = decode_audio(path, cfg.sample_rate, start, end)
    if y is None:
        n_frames = 1 + int(max(end - start, 0.0) / cfg.hop_seconds)
        feats = np.zeros((n_frames, len(feature_names(cfg))), dtype=np.float32)
    else:
        body = frame_features(y, cfg)
        feats = np.concatenate([body, np.ones((body.shape[0], 1), np.float32)], axis=1)
    timestamps = (np.arange(feats.shape[0]) * cfg.hop_seconds).astype(np.float32)
    return feats, timestamps


def audio_extractor(cfg: AudioConfig) -> Extractor:
    """librosa's acoustic features (:mod:`thne.features.audio`)."""
    return Extractor(
        feature_names(cfg),
        lambda c: extract_audio_features(c.media, c.start, c.end, cfg),
        f"librosa {version('librosa')}",
        dataclasses.asdict(cfg),
    )


def audio_config(config: dict) -> AudioConfig:
    """The :class:`AudioConfig` a feature file's ``config`` attribute records."""
    values = dict(config)
    if "groups" in values:
        values["groups"] = tuple(values["groups"])
    return AudioConfig(**values)
