"""The console's screenshots the README shows: a site of fixed data under a fixed clock, its
daemon, ``orchd console``, and Debian's chromium driven by Playwright.

    python tools/screenshots.py [OUT_DIR]     (default docs/images; `make screenshots`)

The clock: the test clock hook (``ORCHD_TEST_HOOKS=1``, ``test-clock-offset``) sets the site's
now to 2026-03-02 09:00 UTC when it is made; what follows takes seconds. The data: the same jobs,
outcomes, pause and reason every time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

FIXED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
POLICY = """\
version: 1
sources:
  nvd: {description: NVD feed}
  ghsa: {description: GitHub advisories}
  osv: {description: OSV}
job_types:
  feed-refresh:
    argv: [/bin/sh, -c, "echo refreshed {source}; exit {code}"]
    params: {source: "", code: "0"}
    max_attempts: 1
  rescan:
    argv: [/bin/sh, -c, "echo rescanned"]
schedules:
  nvd-hourly: {job_type: feed-refresh, source: nvd, cron: "5 * * * *", params: {source: nvd}}
  ghsa-hourly: {job_type: feed-refresh, source: ghsa, cron: "25 * * * *", params: {source: ghsa}}
  nightly-rescan: {job_type: rescan, cron: "0 2 * * *"}
quotas:
  - {target: "source:nvd", rate: 12/hour, burst: 3, concurrency: 1}
"""


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images")
    if not Path(CHROMIUM).exists():
        print(f"no chromium at {CHROMIUM}: apt-get install chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="orchd-screenshots-"))
    state, policy = root / "site", root / "policy"
    policy.mkdir()
    (policy / "site.yaml").write_text(POLICY)
    state.mkdir(mode=0o700)
    offset = int(FIXED.timestamp() * 1000) - time.time_ns() // 1_000_000
    (state / "test-clock-offset").write_text(str(offset))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHD_")}
    env |= {"ORCHD_TEST_HOOKS": "1", "TZ": "UTC"}
    base = [sys.executable, "-m", "orchd", "--state-dir", str(state), "--policy-dir", str(policy)]

    def orchd(*args: str) -> str:
        done = subprocess.run([*base, *args], env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"orchd {' '.join(args)}: {done.stderr}")
        return done.stdout

    orchd("init", "--site-id", "hq")
    daemon = subprocess.Popen([*base, "run"], env=env, stderr=subprocess.DEVNULL)
    console = None
    try:
        while "socket" not in json.loads((state / "site.json").read_text()):
            time.sleep(0.1)
        for source, code in (("nvd", "0"), ("ghsa", "0"), ("osv", "0"), ("nvd", "0"), ("osv", "4")):
            orchd(
                "jobs",
                "submit",
                "feed-refresh",
                "--source",
                source,
                "--param",
                f"source={source}",
                "--param",
                f"code={code}",
            )
        orchd("jobs", "submit", "rescan")
        while (
            len(
                [
                    j
                    for j in json.loads(orchd("jobs", "list", "--json"))
                    if j["state"] in ("succeeded", "dead")
                ]
            )
            < 6
        ):
            time.sleep(0.2)
        orchd(
            "sources",
            "pause",
            "ghsa",
            "--reason",
            "upstream rate-limits us until noon",
            "--ticket",
            "OPS-412",
        )
        console = subprocess.Popen(
            [*base, "console", "--json"], env=env, stdout=subprocess.PIPE, text=True
        )
        assert console.stdout is not None
        link = json.loads(console.stdout.readline())["url"]
        origin = link.split("/ui/")[0]
        dead = next(j for j in json.loads(orchd("jobs", "list", "--json")) if j["state"] == "dead")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(link)
            page.wait_for_selector("#chart[data-drawn=true] canvas")
            page.screenshot(path=str(out / "console-overview.png"), full_page=True)
            page.goto(origin + f"/ui/jobs/{dead['job_id']}")
            page.screenshot(path=str(out / "console-job.png"), full_page=True)
            browser.close()
    finally:
        if console is not None:
            console.terminate()
            console.wait()
        daemon.terminate()
        daemon.wait()
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {out / 'console-overview.png'} and {out / 'console-job.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
