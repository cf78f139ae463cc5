"""One press of "score": a clip scored with each chosen run by
:func:`thne.predict.pipeline.predict`, the function behind ``thne predict``, so that the page
and the command give the same number for the same input.

Each request works in a folder of its own under ``<work>/requests``; what it offers for
download (each run's TSV row and figure) is copied to one under ``<work>/downloads``, the only
folder the page serves files from. Runs whose features are made the same way share one
extraction: the next one is scored from the first one's feature files, as
``thne predict --audio --visual`` would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from thne.app.catalog import RunChoice
from thne.app.recording import with_duration
from thne.errors import InputError
from thne.predict.inputs import MEDIA_SUFFIXES
from thne.predict.pipeline import predict

# The folders under the app's work folder: one per request for its work, and one per request
# for what it offers for download (the page serves this folder's files, no other).
REQUESTS = "requests"
DOWNLOADS = "downloads"


class RequestError(InputError):
    """What the page was given cannot be scored; said before ``thne predict`` is called."""


# What the page reports as it goes: a share of the work done (0..1) and what is running.
Progress = Callable[[float, str], None]


@dataclass
class ChoiceResult:
    """One chosen run's score of the clip: its ``predictions.tsv`` row, that file, and the
    attention figure where the variant has one."""

    choice: RunChoice
    row: dict
    tsv: Path
    figure: Path | None


@dataclass
class Scored:
    folder: Path
    results: list[ChoiceResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def files(self) -> list[Path]:
        """What the page offers for download: each TSV, then each figure."""
        return [r.tsv for r in self.results] + [r.figure for r in self.results if r.figure]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "run"


def _seconds(name: str, value: str) -> str:
    value = value.strip()
    if value:
        try:
            float(value)
        except ValueError:
            raise RequestError(
                f"{name} is a time in seconds (such as 1.5), not {value!r}"
            ) from None
    return value


def request_inputs(
    folder: Path, media: str, text: str, start: str = "", end: str = ""
) -> tuple[list[str], str | None]:
    """The INPUT list and ``--text`` that ``thne predict`` takes for this clip: the media file
    and its transcript, or, with a start or an end (seconds), a one-row TSV, the command's only
    way to give them."""
    start, end = _seconds("start", start), _seconds("end", end)
    if not start and not end:
        return [media], text
    table = folder / "inputs.tsv"
    row = {"media": str(Path(media).resolve()), "text": text, "start": start, "end": end}
    pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
    return [str(table)], None


def score_request(
    choices: Sequence[RunChoice],
    media: str | os.PathLike | None,
    text: str | None,
    *,
    start: str = "",
    end: str = "",
    recorded: bool = False,
    work_root: str | os.PathLike,
    device: str = "cpu",
    threads: int = 1,
    progress: Progress | None = None,
) -> Scored:
    """Score ``media`` with transcript ``text`` with every run of ``choices``, in a new folder
    under ``work_root``. Bad input raises the error ``thne predict`` raises for it. A
    ``recorded`` clip (the browser's webcam) is given a duration first (:mod:`.recording`)."""
    if not choices:
        raise RequestError("choose at least one trained run")
    if media is None:
        raise RequestError("give a video or audio file, or record one")
    if Path(media).suffix.lower() not in MEDIA_SUFFIXES:
        # Not left to thne predict, which reads a .tsv or .txt INPUT as a table of clips.
        raise RequestError(f"{Path(media).name}: not a media file ({', '.join(MEDIA_SUFFIXES)})")
    t0 = time.perf_counter()
    root = Path(work_root)
    (root / REQUESTS).mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="request-", dir=root / REQUESTS))
    offered = root / DOWNLOADS / folder.name
    offered.mkdir(parents=True)
    scored = Scored(folder)
    if recorded:
        media = with_duration(media, folder)
    inputs, clip_text = request_inputs(folder, str(media), text or "", start or "", end or "")
    # One extraction per way of making features (a run's provenance), shared by its runs.
    features: dict[str, Path] = {}
    for k, choice in enumerate(choices):
        if progress:
            progress(k / len(choices), f"scoring with {choice.label}")
        name = f"{k + 1}-{_slug(choice.label)}"
        key = json.dumps(choice.provenance, sort_keys=True)
        reuse = features.get(key)
        work = features.setdefault(key, folder / f"features-{len(features) + 1}")
        explain = folder / f"{name}.explain" if choice.explains else None
        tsv = folder / f"{name}.predictions.tsv"
        result = predict(
            inputs,
            tsv,
            run=None if choice.ensemble else list(choice.dirs),
            ensemble=choice.ensemble,
            text=clip_text,
            explain=explain,
            work=work,
            audio=work / "audio.h5" if reuse else None,
            visual=work / "visual.h5" if reuse else None,
            threads=threads,
            device=device,
        )
        row = result.table.iloc[0].to_dict()
        # Named after the run, so that the files of several runs download side by side.
        download = ChoiceResult(choice, row, Path(shutil.copy(tsv, offered)), None)
        if explain is not None:
            download.figure = offered / f"{name}.png"
            shutil.copyfile(explain / f"{row['clip']}.png", download.figure)
        scored.results.append(download)
    if progress:
        progress(1.0, "done")
    scored.seconds = time.perf_counter() - t0
    return scored
