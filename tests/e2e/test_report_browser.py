"""The billing report in a real browser: headless Chromium renders it offline, the charts drew.

Chromium comes from Debian's packages (``make chromium`` installs it; ``make test`` depends on it). The
test installs nothing: without a chromium binary it is skipped, saying so.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from firehose.cli.main import main
from tests.unit.firehose.test_report import PHONES, make_folders

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class RefusingProxy:
    """A proxy on 127.0.0.1 that records every connection and answers none: any request the page
    makes to the network comes here (Chromium is told to use it for everything)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    self.requests.append(connection.recv(4096))
                except OSError:
                    self.requests.append(b"?")

    def close(self) -> None:
        self.server.close()


# Chromium's own services (clock, updates), which it calls whatever the page holds.
_CHROMIUM_SERVICES = (".google.com", ".googleapis.com", ".gvt1.com")


def _chromium_own(request: bytes) -> bool:
    words = request.split(b" ", 2)
    target = words[1].decode("latin-1") if len(words) > 1 else ""
    host = target.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.endswith(_CHROMIUM_SERVICES)


def _chromium(proxy: RefusingProxy, *arguments: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--proxy-server=http://127.0.0.1:{proxy.port}",
            "--proxy-bypass-list=<-loopback>",
            "--window-size=1400,2200",
            "--virtual-time-budget=10000",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary: `make chromium` (apt-get install chromium)")
def test_report_renders_its_charts_offline_in_chromium(tmp_path: Path) -> None:
    # GIVEN a report written by the CLI
    root = make_folders(tmp_path / "demo")
    out = tmp_path / "report.html"
    assert main(["report", "--date", "2026-11-03", "--lake", str(root / "lake"), "--out", str(out)]) == 0
    url = out.resolve().as_uri()
    proxy = RefusingProxy()
    try:
        # WHEN Chromium renders it, its scripts run, and a screenshot is taken
        dom = _chromium(proxy, "--dump-dom", url)
        screenshot = tmp_path / "report.png"
        shot = _chromium(proxy, f"--screenshot={screenshot}", url)
    finally:
        proxy.close()

    # THEN every chart drew: Plotly's SVG with its bars, in each section
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = dom.stdout
    for anchor in (
        "contacts-by-outcome",
        "minutes-by-provider",
        "calls-by-hour",
        "hold-time",
        "reconciliation",
    ):
        section = page.split(f'id="chart-{anchor}"', 1)[1].split("</section>", 1)[0]
        assert 'class="main-svg"' in section, anchor
        assert section.count('class="point"') >= 1, anchor  # bar marks
    # AND the screenshot has pixels drawn beyond a blank page
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000
    # AND nothing was requested from the network, and no phone number reached the page
    assert [request for request in proxy.requests if not _chromium_own(request)] == []
    for phone in PHONES:
        assert phone not in page
