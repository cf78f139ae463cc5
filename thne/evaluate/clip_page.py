"""The report's per-clip page: every test clip with its video, transcript, label, t-HNE's
prediction and each variant's (means over seeds), and t-HNE's absolute error, worst first, as
the paper's case study reads them. The table sorts by any column (click its header) and
filters by video and by error, with a few lines of inline script: the page is one
self-contained file, with nothing fetched, inside `snakemake --report` as outside it."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from thne.data.manifest import read_manifest
from thne.errors import InputError
from thne.evaluate.html import page, write_page
from thne.evaluate.report_figures import read_predictions

REFERENCE = "thne"

_SCRIPT = """
const table = document.getElementById("clips");
const rows = Array.from(table.tBodies[0].rows);
const video = document.getElementById("video");
const minError = document.getElementById("min-error");
const shown = document.getElementById("shown");
function filter() {
  const v = video.value.trim().toLowerCase();
  const e = parseFloat(minError.value);
  let n = 0;
  for (const row of rows) {
    const keep = (!v || row.dataset.video.toLowerCase().includes(v)) &&
      (isNaN(e) || parseFloat(row.dataset.error) >= e);
    row.hidden = !keep;
    n += keep;
  }
  shown.textContent = n;
}
function sortBy(th) {
  const i = th.cellIndex, numeric = th.dataset.type === "number";
  const dir = th.dataset.dir === "asc" ? "desc" : "asc";
  for (const other of table.tHead.rows[0].cells) delete other.dataset.dir;
  th.dataset.dir = dir;
  const key = r => numeric ? parseFloat(r.cells[i].dataset.value) : r.cells[i].textContent;
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    const c = numeric ? x - y : x.localeCompare(y);
    return dir === "asc" ? c : -c;
  });
  for (const r of rows) table.tBodies[0].appendChild(r);
}
for (const th of table.tHead.rows[0].cells) th.addEventListener("click", () => sortBy(th));
video.addEventListener("input", filter);
minError.addEventListener("input", filter);
filter();
"""

_STYLE = """
th { cursor: pointer; user-select: none; }
th[data-dir="asc"]::after { content: " \\25B2"; }
th[data-dir="desc"]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
label { margin-right: 1.5em; }
"""


def clip_table(
    predictions: Sequence[str | os.PathLike], manifest: str | os.PathLike
) -> pd.DataFrame:
    """Per test clip, worst t-HNE error first: video, clip, transcript, media, label, t-HNE's
    and each other variant's seed-mean prediction, t-HNE's absolute error."""
    means = {v: f.set_index("clip_id") for v, f in read_predictions(predictions).items()}
    if REFERENCE not in means:
        raise InputError(f"no predictions of {REFERENCE!r} among {list(map(str, predictions))}")
    ref = means[REFERENCE]
    for variant, frame in means.items():
        if not frame.index.equals(ref.index):
            raise InputError(f"{variant}: other test clips than {REFERENCE}")
    clips = {c.clip_id: c for c in read_manifest(manifest)}
    unknown = [c for c in ref.index if c not in clips]
    if unknown:
        raise InputError(f"{manifest}: no clip {unknown[0]} (predicted by {REFERENCE})")
    table = pd.DataFrame(
        {
            "video": [clips[c].video_id for c in ref.index],
            "clip": list(ref.index),
            "text": [clips[c].text for c in ref.index],
            "media": [clips[c].media for c in ref.index],
            "label": ref["label"].to_numpy(),
            REFERENCE: ref["prediction"].to_numpy(),
            **{v: f["prediction"].to_numpy() for v, f in means.items() if v != REFERENCE},
            "error": (ref["prediction"] - ref["label"]).abs().to_numpy(),
        }
    )
    return table.sort_values("error", ascending=False, kind="stable").reset_index(drop=True)


def _media_link(media: str) -> str:
    path = Path(media)
    if not media or not path.is_file():
        return ""
    return f"<a href='{html.escape(path.resolve().as_uri())}'>media</a>"


def clip_page(table: pd.DataFrame, dataset: str) -> str:
    """The page of :func:`clip_table`'s table."""
    variants = [c for c in table.columns if c not in ("video", "clip", "text", "media", "error")]
    variants.remove("label")
    head = ["video", "clip", "transcript", "label", *variants, "|error|", "media"]
    types = ["text", "text", "text", "number", *["number"] * len(variants), "number", "text"]
    header = "".join(
        f"<th data-type='{t}'>{html.escape(h)}</th>" for h, t in zip(head, types, strict=True)
    )
    body = []
    for row in table.itertuples(index=False):
        values = row._asdict()

        def num(x: float) -> str:
            return f"<td class='num' data-value='{x!r}'>{x:+.3f}</td>"

        cells = [
            f"<td>{html.escape(str(values['video']))}</td>",
            f"<td>{html.escape(str(values['clip']))}</td>",
            f"<td>{html.escape(str(values['text']))}</td>",
            num(float(values["label"])),
            *(num(float(values[v])) for v in variants),
            f"<td class='num' data-value='{float(values['error'])!r}'>"
            f"{float(values['error']):.3f}</td>",
            f"<td>{_media_link(str(values['media']))}</td>",
        ]
        attrs = f"data-video='{html.escape(str(values['video']))}'"
        attrs += f" data-error='{float(values['error'])!r}'"
        body.append(f"<tr {attrs}>{''.join(cells)}</tr>")
    controls = (
        "<p><label>Video <input id='video' type='search' placeholder='video id'></label>"
        "<label>|error| at least <input id='min-error' type='number' step='0.1' min='0'></label>"
        f"<span id='shown'>{len(table)}</span> of {len(table)} clips shown</p>"
    )
    intro = (
        f"<h1>Per-clip predictions: {html.escape(dataset)} test split</h1>"
        f"<p>Every test clip, t-HNE's worst first. Predictions are means over each variant's "
        f"seeds; |error| is t-HNE's. Click a header to sort; filter by video or error. "
        f"Variants: {html.escape(', '.join(variants))}.</p>"
    )
    table_html = (
        f"<table id='clips'><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
    return page(
        f"{dataset}: per-clip predictions",
        f"<style>{_STYLE}</style>{intro}{controls}{table_html}<script>{_SCRIPT}</script>",
    )


def write_clip_page(
    predictions: Sequence[str | os.PathLike],
    manifest: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    dataset: str,
) -> pd.DataFrame:
    table = clip_table(predictions, manifest)
    write_page(out_path, clip_page(table, dataset))
    return table
