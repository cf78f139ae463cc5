"""Pages of the HTML report (``snakemake --report``): the tables, split counts, excluded clips
and the config a dataset's results came from, each one self-contained HTML file."""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import h5py
import pandas as pd
import yaml

from thne.io import atomic_path

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; }
th { background: #eef; }
code, pre { background: #f4f4f4; }
pre { padding: 0.8em; }
"""


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def _inline(text: str) -> str:
    text = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    # Split on the pipes that are not escaped as \|.
    parts = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [p.strip().replace("\\|", "|") for p in parts]


def markdown_to_html(text: str) -> str:
    """The markdown the thne reports write: headings, paragraphs, bullet lists, pipe tables."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            head, body = rows[0], [r for r in rows[1:] if not all(set(c) <= set("-:") for c in r)]
            out.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>")
            for row in body:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>")
            out.append("</table>")
        elif line.startswith("- "):
            out.append("<ul>")
            while i < len(lines) and lines[i].startswith("- "):
                out.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("#", "|", "- ")):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline(' '.join(para))}</p>")
    return "\n".join(out)


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, border=0)


def splits_page(splits_json: str | os.PathLike) -> str:
    report = json.loads(Path(splits_json).read_text())
    counts = pd.DataFrame(
        {"split": list(report["counts"]), "clips": list(report["counts"].values())}
    )
    body = f"<h1>Splits of {html.escape(report['dataset'])}</h1>\n" + _table(counts)
    body += f"<p>{report['total']} clips in all; layout {html.escape(report['layout'])}.</p>"
    if report.get("paper_table1"):
        paper = pd.DataFrame(
            {
                "split": list(report["paper_table1"]),
                "clips in paper Table 1": list(report["paper_table1"].values()),
            }
        )
        body += "<h2>Paper Table 1</h2>\n" + _table(paper)
    for key in ("difference", "note"):
        if report.get(key):
            body += f"<p>{key}: {_inline(json.dumps(report[key]))}</p>"
    left_out = report.get("left_out") or {}
    if left_out:
        body += (
            "<h2>Left out of the folds</h2>\n<pre>"
            + html.escape(json.dumps(left_out, indent=2))
            + "</pre>"
        )
    return page(f"{report['dataset']} splits", body)


def excluded_page(
    dataset: str,
    excluded_tsv: str | os.PathLike,
    feature_files: dict[str, str | os.PathLike],
) -> str:
    """Clips left out at ingest (``excluded.tsv``) and by feature extraction (the feature
    files' ``excluded`` attribute), each with its reason."""
    ingest = pd.read_csv(excluded_tsv, sep="\t", dtype=str).fillna("")
    body = f"<h1>Clips left out of {html.escape(dataset)}</h1>\n"
    body += f"<h2>At ingest: {len(ingest)}</h2>\n"
    body += _table(ingest) if len(ingest) else "<p>None.</p>"
    for modality, path in feature_files.items():
        with h5py.File(path, "r", locking=False) as h5:
            rows = json.loads(h5.attrs.get("excluded", "[]"))
        body += f"<h2>By {html.escape(modality)} feature extraction: {len(rows)}</h2>\n"
        body += _table(pd.DataFrame(rows)) if rows else "<p>None.</p>"
    return page(f"{dataset} excluded clips", body)


def config_page(dataset: str, config: dict) -> str:
    text = yaml.safe_dump(config, sort_keys=False)
    body = f"<h1>Configuration of {html.escape(dataset)}</h1>\n<pre>{html.escape(text)}</pre>"
    return page(f"{dataset} configuration", body)


def markdown_page(markdown_file: str | os.PathLike) -> str:
    text = Path(markdown_file).read_text()
    title = next((line.lstrip("# ") for line in text.splitlines() if line.startswith("#")), "")
    return page(title, markdown_to_html(text))


def write_page(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
