"""Time ``thne app``: its start-up, and pressing score on a 10 s clip until the result shows.

The app is started as a user starts it (``thne app --run RUN``), on a free port; start-up is
from the process's start to the line that gives the page's address. A clip (default: the
first 10 s of the shared talking_face.mp4) is then scored ``--repeats`` times in the system
Chromium, each time from pressing score to the status line, and once with ``thne predict`` on
the same input for comparison (a new process, so it pays for its imports and the run's load).

CPU time is the app process's own (user + system, from /proc), over the same spans; the
machine is noisy, so read medians and the CPU column.

    python benchmarks/app.py                                  # results/demo/runs/thne/seed1
    python benchmarks/app.py --run results/demo/runs/thne/seed2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TALKING = ROOT.parent / "shared" / "fixtures" / "media" / "talking_face.mp4"
TEXT = "if you ask me this is quite a good video and i enjoyed it"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(ROOT / "results/demo/runs/thne/seed1"))
    parser.add_argument("--media", default=str(TALKING))
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--start", default="0")
    parser.add_argument("--end", default="10")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="app-bench-"))
    port = free_port()
    t0 = time.perf_counter()
    app = subprocess.Popen(
        [str(BIN / "thne"), "app", "--run", args.run, "--port", str(port), "--work", str(work)],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = None
    for line in app.stderr:
        if found := re.search(r"app: open (http://\S+)", line):
            url = found.group(1)
            break
    if url is None:
        sys.exit("the app did not start")
    startup = (time.perf_counter() - t0, cpu_seconds(app.pid))
    walls, cpus, shown = [], [], None
    try:
        with sync_playwright() as p:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("#score")
            page.locator("#upload input[type=file]").set_input_files(args.media)
            page.locator("#upload").get_by_text(Path(args.media).name).wait_for()
            page.locator("#transcript textarea").fill(args.text)
            page.locator("#start textarea, #start input").fill(args.start)
            page.locator("#end textarea, #end input").fill(args.end)
            for _ in range(args.repeats):
                line = page.locator("#status [data-request]")
                before = line.get_attribute("data-request") if line.count() else None
                c0, w0 = cpu_seconds(app.pid), time.perf_counter()
                page.click("#score")
                # The status line of this press: numbered after the one before.
                page.wait_for_function(
                    "b => { const d = document.querySelector('#status [data-request]');"
                    " return d && d.dataset.request !== b; }",
                    arg=before,
                    timeout=600_000,
                    polling=50,
                )
                walls.append(time.perf_counter() - w0)
                cpus.append(cpu_seconds(app.pid) - c0)
                status = page.inner_text("#status")
                if not status.startswith("scored"):
                    sys.exit(status)
                shown = page.locator("#scores .card").first.get_attribute("data-prediction")
            browser.close()
    finally:
        app.terminate()
        app.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "in.tsv"
        row = {"media": args.media, "text": args.text, "start": args.start, "end": args.end}
        pd.DataFrame([row]).to_csv(table, sep="\t", index=False)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter()
        out = Path(tmp) / "out.tsv"
        cmd = [str(BIN / "thne"), "predict", "--run", args.run, str(table), "--out", str(out)]
        subprocess.run(cmd, check=True, capture_output=True)
        cli_wall = time.perf_counter() - w0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        cli_value = pd.read_csv(out, sep="\t", dtype=str).iloc[0]["prediction"]

    print(f"run {args.run}; clip {args.media} [{args.start}, {args.end}] s")
    print(f"{'':34} {'wall s':>8} {'CPU s':>8}")
    print(f"{'app start-up (to its address)':34} {startup[0]:8.2f} {startup[1]:8.2f}")
    print(
        f"{'score, pressed to shown (median)':34} {statistics.median(walls):8.2f} "
        f"{statistics.median(cpus):8.2f}   ({args.repeats} presses: "
        + ", ".join(f"{w:.2f}" for w in walls)
        + ")"
    )
    print(f"{'thne predict, same input':34} {cli_wall:8.2f} {cli_cpu:8.2f}")
    print(f"prediction: page {shown}, thne predict {cli_value}")


if __name__ == "__main__":
    main()
