"""Where a dataset's files come from: the paths and flags of the download, unpack, ingest and
import rules, from a dataset's ``source:`` section."""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
from collections.abc import Iterable, Mapping

from thne.workflow.config import SDK_ROLES


def is_url(value: object) -> bool:
    return str(value).startswith(("http://", "https://"))


def source(config: Mapping, ds: str) -> Mapping:
    return config["datasets"][ds]["source"]


def cmu_dataset(config: Mapping, ds: str) -> str:
    """Which dataset a section is (mosi, mosei, ...): its folds and its rows in the paper."""
    return source(config, ds).get("dataset") or paper_dataset(config, ds)


def paper_dataset(config: Mapping, ds: str) -> str:
    return config["datasets"][ds].get("base") or ds


def raw_dir(config: Mapping, ds: str) -> str:
    """The unpacked copy: the user's raw_dir, or where the unpack rule puts the archive."""
    return source(config, ds).get("raw_dir") or f"data/{ds}/raw"


def archive_path(config: Mapping, ds: str) -> str:
    src = source(config, ds)
    if src.get("archive"):
        return src["archive"]
    if not src.get("url"):
        raise ValueError(f"datasets.{ds}.source: give raw_dir, archive or url to find the dataset")
    return f"data/{ds}/download/archive"


def labels_path(config: Mapping, ds: str) -> str:
    labels = source(config, ds).get("labels")
    if not labels:
        raise ValueError(
            f"datasets.{ds}.source.labels: CMU-MOSEI needs the labels file "
            "(CMU_MOSEI_Labels.csd), as a URL or a local path"
        )
    return f"data/{ds}/download/labels.csd" if is_url(labels) else labels


def ingest_inputs(config: Mapping, ds: str) -> dict:
    """The unpacked copy, and for a user's own raw_dir its annotation files, whose dates
    Snakemake sees (a folder's own date does not change when a file inside it is edited).
    """
    src = source(config, ds)
    inputs = {"raw": raw_dir(config, ds)}
    if src.get("raw_dir"):
        from thne.data.ingest import annotation_files

        inputs["annotations"] = annotation_files(
            src["layout"], src["raw_dir"], dataset=cmu_dataset(config, ds)
        )
    if src["layout"] == "cmu" and cmu_dataset(config, ds) == "mosei":
        inputs["labels"] = labels_path(config, ds)
    return inputs


def ingest_flags(config: Mapping, ds: str, labels: str | None) -> str:
    flags = f"--layout {source(config, ds)['layout']} --dataset {cmu_dataset(config, ds)}"
    if labels:
        flags += f" --labels {shlex.quote(str(labels))}"
    return flags


def corrupt_flag(config: Mapping, ds: str) -> str:
    """Only an archive this workflow downloaded is moved aside when corrupt, never a user's."""
    return "" if source(config, ds).get("archive") else "--move-corrupt-aside"


def download_flags(config: Mapping, ds: str, url_key: str, mirrors_key: str | None = None) -> str:
    """Flags of `thne download` for the URL under source.<url_key>, its mirrors and checksum
    (source.sha256 for the archive, <url_key>_sha256 for the others); a failed download then
    names the config keys that avoid it."""
    src = source(config, ds)
    mirrors = src.get(mirrors_key, []) if mirrors_key else []
    flags = [
        f"--url {shlex.quote(src[url_key])}",
        f"--config-key datasets.{ds}.source.{url_key}",
        *(f"--mirror {shlex.quote(m)}" for m in mirrors),
    ]
    sha256 = src.get("sha256" if url_key == "url" else f"{url_key}_sha256")
    if sha256:
        flags.append(f"--sha256 {sha256}")
    return " ".join(flags)


def import_inputs(config: Mapping, ds: str) -> dict:
    """A published feature set's files: the pickles, or each SDK sequence (downloaded where
    it is a URL)."""
    src = source(config, ds)
    if src["layout"] != "sdk":
        if not src.get("pickles"):
            raise ValueError(
                f"datasets.{ds}.source.pickles: the {src['layout']} layout needs its pickles "
                "(a folder for mmim, a .pkl file for mmsa_pkl)"
            )
        return {"pickles": src["pickles"]}
    return {
        role: f"data/{ds}/download/{role}.csd" if is_url(src[role]) else src[role]
        for role in SDK_ROLES
    }


def import_flags(inputs: Mapping[str, str]) -> str:
    if "pickles" in inputs:
        return f"--pickles {shlex.quote(str(inputs['pickles']))}"
    return " ".join(f"--{r}-csd {shlex.quote(str(inputs[r]))}" for r in SDK_ROLES)


def media_stamp(path: str | os.PathLike) -> str:
    """Size and modification time of a media file: what changes when it is replaced, restored
    from a backup or re-encoded (a restored copy can be older than the features)."""
    try:
        stat = os.stat(path)
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def clips_fingerprint(clips: Iterable) -> str:
    """Fingerprint of clips and of the media files they read (a shard's ``media`` param)."""
    digest = hashlib.sha256()
    for clip in clips:
        row = (clip.clip_id, clip.start, clip.end, clip.media, media_stamp(clip.media))
        digest.update("\t".join(map(str, row)).encode() + b"\n")
    return digest.hexdigest()[:16]


def media_files(folder: str | os.PathLike, suffixes: tuple[str, ...]) -> list[str]:
    """Every file under ``folder`` whose name ends in one of ``suffixes`` (any case), in a
    fixed order."""
    found = []
    for parent, dirs, names in sorted(os.walk(folder)):
        dirs.sort()
        found += [os.path.join(parent, n) for n in sorted(names) if n.lower().endswith(suffixes)]
    return found


@functools.cache
def raw_media(raw: str | None) -> str:
    """Fingerprint of every media file under a user's raw_dir, as a param of ingest: a file
    put back, replaced or re-encoded changes which clips ingest keeps. One scan per parse.
    None (no raw_dir): an unpacked download, which is never edited in place.
    """
    from thne.predict.inputs import MEDIA_SUFFIXES

    if not raw:
        return ""
    digest = hashlib.sha256()
    for path in media_files(raw, MEDIA_SUFFIXES):
        digest.update(f"{os.path.relpath(path, raw)}\t{media_stamp(path)}\n".encode())
    return digest.hexdigest()[:16]
