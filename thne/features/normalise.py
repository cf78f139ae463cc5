"""Feature standardisation statistics, from the train split only.

``thne stats`` writes them beside the feature file (``features/{ds}/<modality>.stats.json``);
training applies them to every split. Statistics over all splits would leak the valid and test
clips into training.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from thne.io import write_json

PRESENCE_CHANNELS: tuple[str, ...] = ("face_detected", "audio_present")


@dataclass
class Normaliser:
    """Per-feature mean and std from the train split; applied to every split.

    Rows whose presence channel (``face_detected``, ``audio_present``) is 0 hold zeros that mean
    "nothing observed". They are left out of the statistics and stay zero after normalising,
    and the presence channel itself keeps its 0/1 values.
    """

    mean: np.ndarray
    std: np.ndarray
    presence: int | None = None

    @classmethod
    def fit(cls, sequences: list[np.ndarray], names: list[str] | None = None) -> Normaliser:
        presence = next((names.index(n) for n in PRESENCE_CHANNELS if names and n in names), None)
        stacked = np.concatenate(sequences, axis=0).astype(np.float64)
        if presence is not None and (stacked[:, presence] > 0).any():
            stacked = stacked[stacked[:, presence] > 0]
        mean, std = stacked.mean(axis=0), stacked.std(axis=0)
        # A constant column (e.g. a presence flag that is always 1) would divide by zero.
        std[std < 1e-8] = 1.0
        if presence is not None:
            mean[presence], std[presence] = 0.0, 1.0
        return cls(mean.astype(np.float32), std.astype(np.float32), presence)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        if self.presence is not None:
            z[x[:, self.presence] <= 0] = 0.0
        return z

    def save(self, path: str | os.PathLike, names: list[str], **info) -> None:
        write_json(
            path,
            {
                **info,
                "feature_names": names,
                "presence": self.presence,
                "mean": self.mean.tolist(),
                "std": self.std.tolist(),
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike, names: list[str]) -> Normaliser:
        stats = json.loads(open(path).read())
        if stats["feature_names"] != list(names):
            raise ValueError(f"{path}: statistics are for other features than the feature file's")
        return cls(
            np.asarray(stats["mean"], np.float32),
            np.asarray(stats["std"], np.float32),
            stats["presence"],
        )
