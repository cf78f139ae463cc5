"""download() against a real HTTP server on 127.0.0.1 that can cut, ignore Range or fail."""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import namedtuple
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from thne.data import download as download_module
from thne.data.download import DownloadError, download, partial_path

PAYLOAD = os.urandom(300_000)
GOOD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Site:
    """What the server serves and how it misbehaves; ``requests`` logs (method, path, Range)."""

    files: dict[str, bytes] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)  # path -> bytes sent by the first GET
    ignore_range: bool = False
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    base: str = ""

    def url(self, path: str) -> str:
        return self.base + path


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        site: Site = self.server.site
        wanted = self.headers.get("Range")
        site.requests.append((self.command, self.path, wanted))
        if self.path in site.fail:
            self.send_error(site.fail[self.path])
            return
        data = site.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        if wanted and not site.ignore_range:
            start, status = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1]), 206
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if not send_body:
            return
        cut = site.cut.pop(self.path, None)
        # The header promised the whole body; closing early is what a dropped connection looks like.
        self.wfile.write(body if cut is None else body[:cut])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def site(monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.site = Site(files={"/data.bin": PAYLOAD})
    server.site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server.site
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def fetch(urls, dest, **kwargs):
    kwargs.setdefault("backoff", 0)
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("progress", False)
    return download(urls, dest, **kwargs)


def test_plain_download_with_checksum_and_no_refetch(site, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    assert fetch([site.url("/data.bin")], dest, sha256=GOOD_SHA, progress=True) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not partial_path(dest).exists()
    assert [r[:2] for r in site.requests] == [("GET", "/data.bin")]

    site.requests.clear()
    assert fetch([site.url("/data.bin")], dest, sha256=GOOD_SHA.upper()) == dest
    assert fetch(site.url("/data.bin"), dest) == dest  # a lone string is one URL, not characters
    assert site.requests == []


def test_existing_dest_with_wrong_checksum_is_fetched_again(site, tmp_path):
    dest = tmp_path / "data.bin"
    dest.write_bytes(b"stale")
    fetch([site.url("/data.bin")], dest, sha256=GOOD_SHA)
    assert dest.read_bytes() == PAYLOAD


def test_cut_transfer_resumes_with_range(site, tmp_path, capsys):
    """The retry and the resume are told in plain words (before: nothing, and a failure named
    the internal exception class _Transient)."""
    site.cut["/data.bin"] = 120_000
    dest = tmp_path / "data.bin"
    fetch([site.url("/data.bin")], dest, sha256=GOOD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert site.requests == [
        ("GET", "/data.bin", None),
        ("GET", "/data.bin", "bytes=120000-"),
    ]
    log = capsys.readouterr().err
    assert f"download from {site.url('/data.bin')} failed (connection ended after 120000 of " in log
    assert "trying again in" in log and "(attempt 2 of" in log
    assert "resuming data.bin from byte 120000 (0.1 MB already here)" in log
    assert "_Transient" not in log


def test_server_ignoring_range_restarts_from_zero(site, tmp_path):
    site.cut["/data.bin"] = 120_000
    site.ignore_range = True
    dest = tmp_path / "data.bin"
    fetch([site.url("/data.bin")], dest)
    assert dest.read_bytes() == PAYLOAD
    assert [r[2] for r in site.requests] == [None, "bytes=120000-"]


@pytest.mark.parametrize(
    "left_over, expect_requests",
    [
        (PAYLOAD[:1000], [("GET", "/data.bin", "bytes=1000-")]),
        # Already complete: the server answers 416 and nothing more is fetched.
        (PAYLOAD, [("GET", "/data.bin", f"bytes={len(PAYLOAD)}-")]),
        # Longer than the remote file: 416, then a fresh start.
        (
            PAYLOAD + b"junk",
            [("GET", "/data.bin", f"bytes={len(PAYLOAD) + 4}-"), ("GET", "/data.bin", None)],
        ),
    ],
    ids=["partial", "complete", "too-long"],
)
def test_partial_file_from_an_earlier_run(site, tmp_path, left_over, expect_requests):
    dest = tmp_path / "data.bin"
    partial_path(dest).write_bytes(left_over)
    fetch([site.url("/data.bin")], dest, sha256=GOOD_SHA)
    assert dest.read_bytes() == PAYLOAD
    assert site.requests == expect_requests
    assert not partial_path(dest).exists()


def test_checksum_mismatch_leaves_nothing(site, tmp_path):
    dest = tmp_path / "data.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as info:
        fetch([site.url("/data.bin")], dest, sha256=wrong)
    message = str(info.value)
    assert site.url("/data.bin") in message
    assert wrong in message and GOOD_SHA in message
    assert not dest.exists()
    assert not partial_path(dest).exists()


def test_mirror_used_after_404(site, tmp_path):
    dest = tmp_path / "data.bin"
    fetch([site.url("/gone.bin"), site.url("/data.bin")], dest, sha256=GOOD_SHA)
    assert dest.read_bytes() == PAYLOAD
    # A 404 is final for that URL: no retries before moving to the mirror.
    assert [r[1] for r in site.requests] == ["/gone.bin", "/data.bin"]


def test_all_urls_failing_are_listed(site, tmp_path):
    site.fail["/broken.bin"] = 500
    urls = [site.url("/broken.bin"), site.url("/gone.bin")]
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError) as info:
        fetch(urls, dest, retries=2)
    message = str(info.value)
    assert urls[0] in message and "HTTP 500" in message
    assert urls[1] in message and "HTTP 404" in message
    # A 500 may pass, so it is retried; a 404 is not.
    assert [r[1] for r in site.requests] == ["/broken.bin", "/broken.bin", "/gone.bin"]
    assert not dest.exists()


def test_short_disk_space_fails_before_writing(site, tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: usage(10**6, 0, 1000))
    dest = tmp_path / "data.bin"
    with pytest.raises(DownloadError, match="disk space") as info:
        fetch([site.url("/data.bin")], dest)
    message = str(info.value)
    assert "GB" in message and str(len(PAYLOAD)) in message and str(tmp_path) in message
    assert not dest.exists()
    assert not partial_path(dest).exists()
    assert len(site.requests) == 1  # not retried: no mirror frees disk space


def test_no_urls_is_a_usage_error(tmp_path):
    with pytest.raises(ValueError):
        download([], tmp_path / "x")
