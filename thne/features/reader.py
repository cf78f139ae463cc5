"""A feature file read clip by clip, for loaders that must not hold every clip's rows at once.

Same file layout and attributes as :func:`thne.features.store.read_h5`, which reads every clip
asked for into one dict: a MOSEI acoustic file is gigabytes that way. Here a clip's frame count
comes from the file's metadata, without reading its rows, so a padded array can be allocated
before any clip is read.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np


class FeatureReader:
    """An open feature file: its attributes, and each clip's rows on request.

    Use as a context manager; the file stays open until it is closed.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        # locking=False: read-only access must work on network filesystems without flock.
        self._h5 = h5py.File(path, "r", locking=False)
        try:
            attrs = self._h5.attrs
            self.feature_names: list[str] = [
                n.decode() if isinstance(n, bytes) else str(n) for n in attrs["feature_names"]
            ]
            self.extractor = str(attrs["extractor"])
            self.config: dict = json.loads(attrs["config"])
            self.excluded: list[dict] = json.loads(attrs.get("excluded", "[]"))
        except BaseException:
            self._h5.close()
            raise

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self._h5

    def frames(self, clip_id: str) -> int:
        """The clip's number of rows, from the metadata (nothing is read)."""
        return int(self._h5[clip_id]["features"].shape[0])

    def read(self, clip_id: str) -> np.ndarray:
        """The clip's rows, [T, D], as stored."""
        return self._h5[clip_id]["features"][()]

    def close(self) -> None:
        self._h5.close()

    def __enter__(self) -> FeatureReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
