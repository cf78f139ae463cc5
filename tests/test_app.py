"""``thne app``: the page, started as a user starts it, driven in the system Chromium.

The session's demo build (conftest.demo_build) is the trained run the page offers. A clip
scored on the page must get the number ``thne predict`` gives it, bad input must show the
command's error and leave the page working, and no request of the page may leave the machine.
"""

import io
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import BIN, FIXTURES, REPO, chromium, need, watch_page

pytestmark = pytest.mark.xdist_group("test_app")

CLIPS = {
    "1.mp4": ("demo01", "i would say the acting is normal"),
    "2.mp4": ("demo01", "to be honest the story was awful"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clip_path(name: str) -> Path:
    return REPO / "resources" / "demo" / "Raw" / CLIPS[name][0] / name


class Recorder:
    """A listening socket that records whoever connects: the app's HTTP(S) proxy, so that a
    request its server side sends off the machine through Python's HTTP clients is seen."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.seen: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(200))
                except OSError:
                    self.seen.append(b"")


@pytest.fixture(scope="module")
def proxy():
    return Recorder()


@pytest.fixture(scope="module")
def app(demo_build, tmp_path_factory, proxy):
    """``thne app`` over the demo build's results, on a free port; its URL, run and work
    folder. Stopped (SIGTERM) after the module's tests."""
    results = demo_build.root / "results"
    run = next((results / "demo" / "runs" / "thne").glob("seed*"))
    work = tmp_path_factory.mktemp("app-work")
    port = free_port()
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        env[name] = proxy.url
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "thne"), "app", "--results", str(results), "--port", str(port)]
        + ["--work", str(work)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    url = None
    for line in proc.stderr:
        lines.append(line)
        if found := re.search(r"app: open (http://\S+)", line):
            url = found.group(1)
            break
    assert url, "".join(lines)
    startup = time.perf_counter() - t0
    # The rest of the log, read on, so that the app never blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()
    yield {"url": url, "run": run, "work": work, "log": lines, "startup": startup}
    proc.terminate()
    assert proc.wait(timeout=30) == 0, "".join(lines[-30:])


def predict_cli(run: Path, media: Path, text: str, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "thne"), "predict", "--run", str(run), str(media), "--text", text]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
    yield b
    b.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors, remote = watch_page(page, local=url)
    page.goto(url)
    page.wait_for_selector("#score")
    return page, errors, remote


def give_clip(page, media: Path, text: str) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(media))
    # The upload is done when the file's name is listed in the box.
    page.locator("#upload").get_by_text(media.name).wait_for()
    page.locator("#transcript textarea").fill(text)


def last_request(page) -> str | None:
    line = page.locator("#status [data-request]")
    return line.get_attribute("data-request") if line.count() else None


def wait_for_answer(page, before: str | None) -> str:
    """Wait for the status line of a press after the one numbered ``before``; its text."""
    page.wait_for_function(
        "before => { const d = document.querySelector('#status [data-request]');"
        " return d && d.dataset.request !== before; }",
        arg=before,
        timeout=300_000,
    )
    return page.inner_text("#status").strip()


def press_score(page) -> str:
    """Press score and wait for its status line; its text."""
    before = last_request(page)
    page.click("#score")
    return wait_for_answer(page, before)


def test_runs_on_offer_show_dataset_variant_seeds_and_metrics(app, browser):
    page, errors, remote = open_page(browser, app["url"])
    table = page.inner_text("#runs-table")
    seed = int(app["run"].name[4:])
    assert re.search(rf"demo/runs/thne/seed{seed}\s+demo\s+thne\s+{seed}\s+\d\.\d{{3}}", table)
    # The one t-HNE run of the build is preselected.
    checked = page.locator("#choices input:checked")
    assert checked.count() == 1
    assert page.locator("#choices").get_by_label(f"demo/runs/thne/seed{seed}").is_checked()
    assert not remote and not errors, (remote, errors)


def test_two_clips_at_once_get_the_numbers_thne_predict_gives(app, browser, tmp_path):
    pages = [open_page(browser, app["url"]) for _ in CLIPS]
    for (page, _, _), name in zip(pages, CLIPS, strict=True):
        give_clip(page, clip_path(name), CLIPS[name][1])
    # Both pressed before either is done: the second waits its turn, in a folder of its own.
    for page, _, _ in pages:
        page.click("#score")
    for (page, errors, remote), name in zip(pages, CLIPS, strict=True):
        assert wait_for_answer(page, None).startswith("scored in"), page.inner_text("#status")
        card = page.locator("#scores .card")
        assert card.count() == 1
        shown = card.get_attribute("data-prediction")
        proc = predict_cli(app["run"], clip_path(name), CLIPS[name][1], tmp_path / f"{name}.tsv")
        assert proc.returncode == 0, proc.stderr
        expected = pd.read_csv(tmp_path / f"{name}.tsv", sep="\t", dtype=str).iloc[0]
        assert shown == expected["prediction"], name
        value = float(shown)
        text = card.inner_text()
        assert f"{value:+.3f}" in text and expected["polarity"] in text
        assert "face in 100% of frames" in text and "sound found" in text
        # The figure: a PNG of the clip's attention, not blank.
        src = page.locator("#figure img").get_attribute("src")
        png = page.request.get(src)
        assert png.ok and png.body()[:8] == b"\x89PNG\r\n\x1a\n"
        shot = tmp_path / f"{name}.png"
        shot.write_bytes(png.body())
        from PIL import Image

        with Image.open(shot) as image:
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
        # The TSV offered for download is thne predict's row.
        links = page.locator("#downloads a")
        tsv = next(
            links.nth(i).get_attribute("href")
            for i in range(links.count())
            if links.nth(i).get_attribute("href").endswith(".predictions.tsv")
        )
        row = pd.read_csv(io.StringIO(page.request.get(tsv).text()), sep="\t", dtype=str).iloc[0]
        for column in ("prediction", "polarity", "acc7_class", "face_detected", "s_fv"):
            assert row[column] == expected[column], column
        assert not remote and not errors, (remote, errors)
    # Each request had a folder of its own, which the page does not serve (its downloads are
    # copied out of it).
    folders = list(app["work"].glob("requests/request-*"))
    assert len(folders) >= 2
    page = pages[0][0]
    for private in (*folders[0].glob("features-*/*.h5"), *folders[0].glob("*.tsv")):
        assert page.request.get(f"{app['url']}gradio_api/file={private}").status in (403, 404)


def test_bad_input_shows_the_commands_error_and_the_page_goes_on(app, browser, tmp_path):
    page, errors, remote = open_page(browser, app["url"])
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are notes, not a video\n")
    give_clip(page, fake, "some words")
    shown = press_score(page)
    proc = predict_cli(app["run"], fake, "some words", tmp_path / "out.tsv")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    message = "\n".join(x for x in lines if not x.startswith("(set THNE_DEBUG"))
    # The page's copy of the upload is where the command's message names the file.
    found = re.search(r"clip notes: (/\S+notes\.mp4): cannot be decoded", shown)
    assert found, shown
    uploaded = found.group(1)
    assert shown == message.replace(str(fake), uploaded)
    # A table of clips is not taken from the page: its media could be any file here.
    page.locator("#upload button[aria-label='Clear']").first.click()
    table = tmp_path / "clips.tsv"
    table.write_text(f"media\ttext\n{clip_path('1.mp4')}\tsome words\n")
    give_clip(page, table, "some words")
    assert press_score(page).startswith("thne app: error: clips.tsv: not a media file (.mp4")
    # The next request, with a real clip, is scored.
    page.locator("#upload button[aria-label='Clear']").first.click()
    give_clip(page, clip_path("1.mp4"), CLIPS["1.mp4"][1])
    assert press_score(page).startswith("scored in")
    assert page.locator("#scores .card").count() == 1
    assert not remote and not errors, (remote, errors)


def test_start_and_end_go_through_the_commands_table(app, browser, tmp_path):
    """A start and end are given as ``thne predict`` takes them, in a TSV: the same number."""
    talking = need(FIXTURES / "media" / "talking_face.mp4")
    page, errors, remote = open_page(browser, app["url"])
    give_clip(page, talking, "if you ask me this is quite a good video")
    page.locator("#start textarea, #start input").fill("1")
    page.locator("#end textarea, #end input").fill("4.5")
    assert press_score(page).startswith("scored in")
    shown = page.locator("#scores .card").get_attribute("data-prediction")
    table = tmp_path / "in.tsv"
    pd.DataFrame(
        [
            {
                "media": str(talking),
                "text": "if you ask me this is quite a good video",
                "start": "1",
                "end": "4.5",
            }
        ]
    ).to_csv(table, sep="\t", index=False)
    out = tmp_path / "out.tsv"
    proc = subprocess.run(
        [str(BIN / "thne"), "predict", "--run", str(app["run"]), str(table), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert shown == pd.read_csv(out, sep="\t", dtype=str).iloc[0]["prediction"]
    # Text where a number belongs.
    page.locator("#end textarea, #end input").fill("soon")
    assert (
        press_score(page) == "thne app: error: end is a time in seconds (such as 1.5), not 'soon'"
    )
    assert not remote and not errors, (remote, errors)


def test_a_webcam_recording_is_scored(app, playwright, tmp_path):
    """Chromium's fake camera and microphone (a test pattern and a tone): the browser's WebM,
    which declares no duration, is scored as thne predict scores the page's copy of it."""
    from thne.media import MediaError, probe

    fake = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
    browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox", *fake])
    page = browser.new_context(permissions=["camera", "microphone"]).new_page()
    errors, remote = watch_page(page, local=app["url"])
    page.goto(app["url"])
    page.locator("#webcam").get_by_text("Click to Access Webcam").click()
    record = page.locator("#webcam button[aria-label='start recording']")
    record.click()
    time.sleep(2.5)
    record.click()
    page.locator("#webcam video").wait_for()
    page.locator("#transcript textarea").fill("a short recording that i like")
    assert press_score(page).startswith("scored in")
    card = page.locator("#scores .card")
    shown = card.get_attribute("data-prediction")
    assert "face in 0% of frames; sound found" in card.inner_text()
    browser.close()
    assert not remote and not errors, (remote, errors)
    # The browser's file, as uploaded: no duration; the page scored its copy with one.
    webm = max(app["work"].glob("uploads/*/*.webm"), key=lambda f: f.stat().st_mtime)
    with pytest.raises(MediaError, match="duration is unknown"):
        probe(webm)
    copy = max(app["work"].glob("requests/*/*.mkv"), key=lambda f: f.stat().st_mtime)
    # About the 2.5 s recorded: the browser starts and stops recording a little late or early.
    assert 1.0 < probe(copy).duration < 5.0
    proc = predict_cli(app["run"], copy, "a short recording that i like", tmp_path / "out.tsv")
    assert proc.returncode == 0, proc.stderr
    assert shown == pd.read_csv(tmp_path / "out.tsv", sep="\t", dtype=str).iloc[0]["prediction"]


def test_the_server_sent_nothing_off_the_machine(app, proxy):
    """Run last: after start-up and every request above, the app's server side has sent
    nothing through its proxy (telemetry, a version check, a model hub)."""
    assert proxy.seen == []


def test_a_broken_run_is_named_and_the_others_offered(demo_build, tmp_path):
    """Only run.json and metrics.json are read to list runs; a seed whose run.json is cut
    short is named with the reason, not offered, and does not hide its sibling."""
    from thne.app.catalog import find_choices

    good = next((demo_build.root / "results" / "demo" / "runs" / "thne").glob("seed*"))
    variant = tmp_path / "results" / "demo" / "runs" / "thne"
    for seed, run_json in (("seed1", (good / "run.json").read_text()), ("seed2", "{")):
        (variant / seed).mkdir(parents=True)
        (variant / seed / "run.json").write_text(run_json)
        (variant / seed / "model.safetensors").write_bytes(b"")
    choices, skipped = find_choices(tmp_path / "results")
    assert [c.label for c in choices] == ["demo/runs/thne/seed1"]
    assert choices[0].dataset == "demo" and choices[0].scores_media and choices[0].explains
    # The ensemble and the seed: both name seed2's run.json.
    assert len(skipped) == 2
    assert all(f"{variant / 'seed2' / 'run.json'}: cannot be read as JSON" in s for s in skipped)
