"""``thne report-pages``: the HTML pages that ``snakemake --report`` bundles."""

from __future__ import annotations

import argparse
import os
from html import escape
from pathlib import Path

COMMAND = "report-pages"
HELP = "HTML pages for snakemake --report -> a folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name in ("table", "ablation", "cases", "figure", "splits", "excluded", "audio", "visual"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--clips", required=True, help="the per-clip page (thne clip-page)")
    parser.add_argument("--config-yaml", required=True, help="the dataset's config, as YAML text")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out-dir", required=True)


def run(args: argparse.Namespace) -> None:
    import yaml

    from thne.evaluate import html

    out = Path(args.out_dir)
    pages = {
        "table.html": html.markdown_page(args.table),
        "ablation.html": html.markdown_page(args.ablation),
        "cases.html": html.markdown_page(args.cases),
        "splits.html": html.splits_page(args.splits),
        "excluded.html": html.excluded_page(
            args.dataset, args.excluded, {"acoustic": args.audio, "visual": args.visual}
        ),
        "config.html": html.config_page(args.dataset, yaml.safe_load(args.config_yaml)),
    }
    for name, page in pages.items():
        html.write_page(out / name, page)
    figure = escape(os.path.relpath(args.figure, out), quote=True)
    clips = os.path.relpath(args.clips, out)
    links = "".join(
        f"<li><a href='{escape(n, quote=True)}'>{escape(n)}</a></li>" for n in [*pages, clips]
    )
    dataset = escape(args.dataset)
    html.write_page(
        out / "index.html",
        html.page(
            f"thne results: {args.dataset}",
            f"<h1>thne results: {dataset}</h1><ul>{links}</ul><img src='{figure}' width='900'>",
        ),
    )
