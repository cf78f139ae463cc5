"""The report's per-clip page (thne clip-page): its table from the runs' predictions and the
manifest, and the page driven in a real browser (the system Chromium through Playwright,
offline): it sorts and filters by clicks and typing, fetches nothing and logs no error."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import chromium, watch_page
from thne.data.manifest import Clip, write_manifest
from thne.errors import InputError
from thne.evaluate.clip_page import clip_table, write_clip_page

# Three videos, clips of the first with large errors.
VIDEOS = {"vidA": 4, "vidB": 3, "vidC": 2}


def make_runs(root: Path, variants=("thne", "residual"), seeds=(1, 2)) -> tuple[list, Path]:
    """Real-format inputs: a manifest of the test clips (media present for vidA's), and each
    run's predictions.tsv under results/demo/runs/<variant>/seed<n>/."""
    rng = np.random.default_rng(0)
    media = root / "a.mp4"
    media.write_bytes(b"\0")
    clips = [
        Clip(f"{v}_{i}", v, 0.0, 1.0, "test", float(rng.uniform(-3, 3)), f"{v} says {i}",
             str(media if v == "vidA" else root / "absent.mp4"))
        for v, n in VIDEOS.items()
        for i in range(n)
    ]  # fmt: skip
    manifest = root / "manifest.tsv"
    write_manifest(manifest, clips)
    paths = []
    for variant in variants:
        for seed in seeds:
            run = root / "results/demo/runs" / variant / f"seed{seed}"
            run.mkdir(parents=True)
            shift = [2.5 if c.video_id == "vidA" else 0.1 * seed for c in clips]
            frame = pd.DataFrame(
                {
                    "clip_id": [c.clip_id for c in clips],
                    "label": [c.label for c in clips],
                    "prediction": [c.label + s for c, s in zip(clips, shift, strict=True)],
                }
            )
            frame.to_csv(run / "predictions.tsv", sep="\t", index=False)
            paths.append(run / "predictions.tsv")
    return paths, manifest


def test_table_is_seed_means_worst_first(tmp_path):
    paths, manifest = make_runs(tmp_path)
    table = clip_table(paths, manifest)
    assert len(table) == sum(VIDEOS.values())
    assert list(table.columns) == [
        "video", "clip", "text", "media", "label", "thne", "residual", "error",
    ]  # fmt: skip
    assert table["error"].is_monotonic_decreasing
    assert set(table["video"][:4]) == {"vidA"}  # the clips with the large errors
    # Seed means: 0.1 and 0.2 added by the two seeds give 0.15.
    b = table[table["video"] == "vidB"].iloc[0]
    assert b["thne"] - b["label"] == pytest.approx(0.15)
    assert b["error"] == pytest.approx(0.15)


def test_bad_inputs_name_what_is_wrong(tmp_path):
    paths, manifest = make_runs(tmp_path, variants=("residual",))
    with pytest.raises(InputError, match="no predictions of 'thne'"):
        clip_table(paths, manifest)
    stray = tmp_path / "elsewhere" / "predictions.tsv"
    stray.parent.mkdir()
    shutil.copy(paths[0], stray)
    with pytest.raises(InputError, match="not a run.s file"):
        clip_table([stray], manifest)
    other = tmp_path / "other"
    other.mkdir()
    paths, manifest = make_runs(other)
    write_manifest(manifest, [])
    with pytest.raises(InputError, match="manifest.tsv: no clip vidA_0"):
        clip_table(paths, manifest)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        yield browser
        browser.close()


def test_page_sorts_and_filters_in_a_browser(tmp_path, browser):
    """Checked against the page with its script removed: the first click on a header left
    the rows in error order."""
    paths, manifest = make_runs(tmp_path)
    out = tmp_path / "clips.html"
    write_clip_page(paths, manifest, out, dataset="demo")
    page = browser.new_page()
    errors, remote = watch_page(page)
    page.goto(out.as_uri())
    rows = page.locator("#clips tbody tr")

    def column(name: str) -> list[str]:
        headers = page.locator("#clips thead th").all_inner_texts()
        i = [h.strip(" ▲▼") for h in headers].index(name)
        return [rows.nth(r).locator("td").nth(i).inner_text() for r in range(rows.count())]

    def visible_videos() -> list[str]:
        return [r.locator("td").first.inner_text() for r in rows.all() if r.is_visible()]

    assert rows.count() == 9 and column("video")[:4] == ["vidA"] * 4
    errs = [float(e) for e in column("|error|")]
    assert errs == sorted(errs, reverse=True)
    # Media linked where the file exists.
    assert page.locator("a[href^='file://']").count() == 4

    page.locator("#clips thead th", has_text="label").click()
    labels = [float(x) for x in column("label")]
    assert labels == sorted(labels)
    page.locator("#clips thead th", has_text="label").click()
    assert [float(x) for x in column("label")] == sorted(labels, reverse=True)

    page.locator("#video").fill("vidB")
    assert visible_videos() == ["vidB"] * 3 and page.locator("#shown").inner_text() == "3"
    page.locator("#video").fill("")
    page.locator("#min-error").fill("1")
    assert visible_videos() == ["vidA"] * 4
    assert not errors, errors
    assert not remote, remote
