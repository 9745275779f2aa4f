"""The console in a real browser: Debian's chromium driven by Playwright, through ``orchd console``
run as a subprocess on 127.0.0.1, against a real daemon. Every page opened; what matters
checked (a dead job on the overview, a paused source with its reason, the chart drawn); one
action end to end; no console error and no CSP violation; no horizontal scroll at 1024 and 1280
px; no layout shift over three refreshes; screenshots under the test's temp dir.

Skipped, with the reason, where no chromium or no Playwright is installed (``.ci/run`` installs
chromium with apt-get when it can)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import daemon_harness
from tests.bundlekit import REPO, child_env

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
pytestmark = [
    pytest.mark.daemon,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM), reason="no chromium here (apt-get install chromium)"
    ),
]

POLICY = """
version: 1
sources:
  nvd: {description: NVD}
  ghsa: {description: GHSA}
job_types:
  fetch:
    argv: [/bin/sh, -c, "echo '<script>alert(1)</script>'; exit {code}"]
    params: {code: "0"}
    max_attempts: 1
schedules:
  nvd-hourly: {job_type: fetch, source: nvd, cron: "5 * * * *"}
  ghsa-hourly: {job_type: fetch, source: ghsa, cron: "25 * * * *"}
"""
WHY = ("--reason", "upstream is down", "--ticket", "OPS-9")
# every control a person can reach has a name: a label, or its own text
UNNAMED_CONTROLS = """
[...document.querySelectorAll('input:not([type=hidden]), select, button, a[href]')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
               && !e.textContent.trim())
  .map(e => e.outerHTML.slice(0, 80))
"""
PAGES = (
    "/ui/",
    "/ui/jobs",
    "/ui/jobs?state=dead",
    "/ui/schedules",
    "/ui/quotas",
    "/ui/peers",
    "/ui/audit",
)


class Site:
    def __init__(self, tmp: Path) -> None:
        self.state, self.policy = tmp / "site", tmp / "policy"
        self.policy.mkdir()
        (self.policy / "site.yaml").write_text(POLICY)
        assert self.cli("init", "--site-id", "hq").returncode == 0

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return daemon_harness.run_cli(self.state, self.policy, *args)

    def jobs(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("jobs", "list", "--json").stdout)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Site, str]]:
    """A site with a dead job, a succeeded one and a paused source, its daemon, and the link
    ``orchd console`` printed."""
    site = Site(tmp_path)
    daemon = daemon_harness.start(site.state, site.policy, log_path=tmp_path / "daemon.log")
    console = None
    try:
        assert (
            site.cli("jobs", "submit", "fetch", "--source", "nvd", "--param", "code=3").returncode
            == 0
        )
        assert site.cli("jobs", "submit", "fetch", "--source", "ghsa").returncode == 0
        deadline = time.monotonic() + 60
        while sorted(j["state"] for j in site.jobs()) != ["dead", "succeeded"]:
            assert time.monotonic() < deadline, site.jobs()
            time.sleep(0.3)
        assert site.cli("sources", "pause", "nvd", *WHY).returncode == 0
        console = subprocess.Popen(
            daemon_harness.orchd_argv(site.state, site.policy, "console", "--json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=child_env(),
        )
        assert console.stdout is not None
        line = console.stdout.readline()
        assert line, console.stderr.read() if console.stderr else ""
        yield site, json.loads(line)["url"]
    finally:
        if console is not None:
            console.terminate()
            console.communicate(timeout=10)  # and its pipes closed
        daemon.close()


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_the_console_in_chromium(served: tuple[Site, str], tmp_path: Path) -> None:
    site, link = served
    origin = link.split("/ui/")[0]
    # the port passes the console only, and only once a session exists
    with pytest.raises(urllib.error.HTTPError) as other:
        urllib.request.urlopen(origin + "/metrics", timeout=10)
    assert other.value.code == 404
    other.value.close()
    problems: list[str] = []
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(link)
        assert page.url == origin + "/ui/"  # the token left the address bar
        dead = next(j for j in site.jobs() if j["state"] == "dead")
        assert dead["job_id"][-8:] in page.inner_text("section[aria-labelledby=dead]")
        assert "upstream is down" in page.inner_text("section[aria-labelledby=paused]")
        page.wait_for_selector("#chart[data-drawn=true] canvas", timeout=10_000)
        assert page.get_attribute("time", "title").startswith("local: ")  # UTC, local on hover
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        for width in (1024, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            for path in PAGES:
                page.goto(origin + path)
                wide = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert wide <= 0, (path, width, wide)
                unnamed = page.evaluate(UNNAMED_CONTROLS)
                assert unnamed == [], (path, unnamed)
                page.screenshot(
                    path=str(shots / f"{width}{path.replace('/', '_')}.png"), full_page=True
                )
        page.goto(origin + f"/ui/jobs/{dead['job_id']}")
        assert "<script>alert(1)</script>" in page.inner_text("pre.output")  # shown as text
        # no layout shift over three refreshes of the overview
        page.goto(origin + "/ui/")
        page.evaluate(
            "window.__shift = 0; new PerformanceObserver(l => l.getEntries().forEach(e => "
            "{ if (!e.hadRecentInput) window.__shift += e.value; }))"
            ".observe({type: 'layout-shift', buffered: false})"
        )
        for _ in range(3):
            with page.expect_response(
                lambda r: r.url.endswith("/ui/") and r.request.headers.get("hx-request") == "true",
                timeout=15_000,
            ):
                pass
        assert page.evaluate("window.__shift") < 0.01
        # one action end to end: resume the paused source, by keyboard
        page.goto(origin + "/ui/schedules")
        form = page.locator("form[action='/ui/sources/resume']")
        form.get_by_label("Reason").fill("upstream is back")
        form.get_by_label("Ticket").fill("OPS-10")
        form.get_by_role("button").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.url == origin + "/ui/schedules", page.inner_text("main")
        assert page.locator("form[action='/ui/sources/pause']").count() == 2
        page.screenshot(path=str(shots / "after-resume.png"), full_page=True)
        # another page may not frame the console (CSP frame-ancestors, X-Frame-Options)
        framing = browser.new_page()
        framing.set_content(f'<iframe src="{origin}/ui/"></iframe>')
        framing.wait_for_timeout(1000)
        framed = framing.frames[1]
        assert framed.url.startswith("chrome-error:"), framed.url  # refused, not rendered
        framing.close()
        browser.close()
    resumed = site.cli("audit", "tail", "--type", "source.resumed", "--json")
    said = [json.loads(line) for line in resumed.stdout.splitlines()]
    assert [(e["payload"]["source"], e["ticket"]) for e in said] == [("nvd", "OPS-10")]
    assert problems == [], problems
    assert len(list(shots.iterdir())) >= 16
