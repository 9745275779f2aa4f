"""The console against a real daemon, over its control socket (no TCP): the token asked for
over the socket, spent once for a cookie; every page rendered from the site's data; a form that
pauses a source, recorded as the CLI's is; the JSON twins equal to the CLI's ``--json``; a
caller without ``orch:read`` refused and audited; a wrong Host, a foreign Origin and a missing
CSRF token refused with the ledger unchanged."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlencode

from test_daemon import Daemon, wait_until

HOST = "127.0.0.1:8765"
WHY = ("--reason", "checking the console", "--ticket", "OPS-77")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(str(self.path))


class Browser:
    """Requests to the daemon's socket as a browser behind ``orchd console`` makes them."""

    def __init__(self, sock: Path) -> None:
        self.sock, self.cookie = sock, ""

    def send(
        self, method: str, path: str, *, host: str = HOST, body: bytes = b"", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        conn = UnixHTTP(self.sock)
        sent = {"Host": host} | ({"Cookie": f"orchd_session={self.cookie}"} if self.cookie else {})
        conn.request(method, path, body=body or None, headers=sent | headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, data

    def sign_in(self) -> None:
        status, _, data = self.send(
            "POST", "/v1/console/token", body=b"{}", **{"Content-Type": "application/json"}
        )
        assert status == 200, data
        path = json.loads(data)["path"]
        status, headers, _ = self.send("GET", path)
        assert status == 303 and headers["location"] == "/ui/"
        self.cookie = re.search(r"orchd_session=([^;]+)", headers["set-cookie"])[1]  # type: ignore[index]
        again, _, said = self.send("GET", path)
        assert again == 403 and b"used already" in said

    def form(
        self, path: str, fields: dict[str, str], origin: str = f"http://{HOST}"
    ) -> tuple[int, dict[str, str], bytes]:
        return self.send(
            "POST",
            path,
            body=urlencode(fields).encode(),
            **{"Content-Type": "application/x-www-form-urlencoded", "Origin": origin},
        )


def csrf_of(page: bytes) -> str:
    return re.search(rb'name="csrf" value="([^"]+)"', page)[1].decode()  # type: ignore[index]


def socket_of(daemon: Daemon) -> Path:
    return Path(json.loads((daemon.state / "site.json").read_text())["socket"])


def test_the_console_through_the_socket_reads_acts_and_refuses(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    try:
        policy = daemon.policy / "site.yaml"  # a job that prints its param as it is
        policy.write_text(
            policy.read_text() + '  say:\n    argv: [/bin/echo, "{n}"]\n    params: {n: ""}\n'
        )
        daemon.start()
        hostile = "<script>alert(1)</script>"
        assert daemon.cli("jobs", "submit", "say", "--param", f"n={hostile}").returncode == 0
        wait_until(lambda: [j["state"] for j in daemon.jobs()] == ["succeeded"])
        job_id = str(daemon.jobs()[0]["job_id"])
        browser = Browser(socket_of(daemon))
        assert browser.send("GET", "/ui/")[0] == 401  # no cookie yet
        browser.sign_in()
        pages = {}
        for path in (
            "/ui/",
            "/ui/jobs",
            f"/ui/jobs/{job_id[-8:]}",
            "/ui/schedules",
            "/ui/quotas",
            "/ui/peers",
            "/ui/audit",
        ):
            status, headers, page = browser.send("GET", path)
            assert status == 200, (path, page[:400])
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"
            assert headers["orchd-site"] == "hq"
            pages[path] = page
        assert b"<script>alert(1)</script>" not in pages[f"/ui/jobs/{job_id[-8:]}"]
        assert (
            b"&lt;script&gt;alert(1)&lt;/script&gt;" in pages[f"/ui/jobs/{job_id[-8:]}"]
        )  # output
        assert job_id[-8:].encode() in pages["/ui/jobs"]
        # the JSON twins answer what the CLI's --json prints
        listed = json.loads(browser.send("GET", "/ui/jobs.json")[2])
        assert listed == json.loads(daemon.cli("jobs", "list", "--json").stdout)
        shown = json.loads(browser.send("GET", f"/ui/jobs/{job_id}.json")[2])
        assert shown == json.loads(daemon.cli("jobs", "show", job_id, "--json").stdout)
        # refused forms change nothing
        events = len(daemon.events("source.paused"))
        csrf = csrf_of(pages["/ui/schedules"])
        fields = {
            "csrf": csrf,
            "source": "nvd",
            "reason": "feed is broken",
            "ticket": "OPS-77",
            "next": "/ui/schedules",
        }
        assert browser.form("/ui/sources/pause", fields, origin="http://evil.example")[0] == 403
        assert browser.form("/ui/sources/pause", {**fields, "csrf": "x"})[0] == 403
        assert browser.send("GET", "/ui/", host="evil.example")[0] == 400
        assert browser.send("GET", "/ui/sources/pause?source=nvd")[0] == 404  # a GET never writes
        assert len(daemon.events("source.paused")) == events
        # the form acts as the CLI does, recorded with its reason and ticket
        status, headers, _ = browser.form("/ui/sources/pause", fields)
        assert (status, headers["location"]) == (303, "/ui/schedules")
        paused = daemon.full_events("source.paused")
        assert [(e.payload["source"], e.reason, e.ticket) for e in paused] == [
            ("nvd", "feed is broken", "OPS-77")
        ]
        assert b"feed is broken" in browser.send("GET", "/ui/")[2]
        refused = browser.form("/ui/sources/resume", {**fields, "reason": ""})
        assert refused[0] == 400 or refused[0] == 409, refused  # the policy's rule, as the CLI's
        assert len(daemon.full_events("source.resumed")) == 0
        assert daemon.stop()[0] == 0
    finally:
        daemon.close()


def test_a_caller_without_orch_read_is_refused_and_audited(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    try:
        (daemon.policy / "authz.yaml").write_text(
            f"version: 1\ngrants:\n  - {{uid: {os.getuid()}, scopes: [orch:operate]}}\n"
        )
        daemon.start()
        browser = Browser(socket_of(daemon))
        status, _, said = browser.send(
            "POST", "/v1/console/token", body=b"{}", **{"Content-Type": "application/json"}
        )
        assert status == 403 and b"orch:read" in said
        status, headers, said = browser.send("GET", "/ui/")
        assert status == 403 and b"orch:read" in said and "content-security-policy" in headers
        assert daemon.stop()[0] == 0
        denied = daemon.events("api.denied")
        assert [d["scope"] for d in denied] == ["orch:read", "orch:read"]
    finally:
        daemon.close()
