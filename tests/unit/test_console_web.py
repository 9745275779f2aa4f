"""The console's rules, as the daemon applies them to one request (``adapters/console/web.py``):
the Host, the scope, single-use tokens bound to a uid, cookies honoured only for that uid, the
headers of every reply, CSRF and Origin on forms, GETs that only read, hostile text inert.
The actions are a fake that records what was asked; tests/faults/test_console.py runs the same
rules against a real daemon."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from orchd.adapters.console import sessions as sessions_module
from orchd.adapters.console.sessions import Refused, Sessions
from orchd.adapters.console.web import CSP, Console, Reply, Request, parse_form

UID, OTHER = 1000, 1001
HOST = "127.0.0.1:8765"
ALL = ("orch:operate", "orch:read")
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Actions:
    """The daemon's actions as the console sees them: canned answers, every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, body: dict[str, Any]) -> tuple[int, Any]:
        self.calls.append((name, body))
        if name == "status":
            return 200, _status()
        if name == "runs.hourly":
            rows = [
                {
                    "hour": "2026-12-07T01:00:00.000Z",
                    "counts": {"failed": 1, "succeeded": 2},
                    "total": 3,
                }
            ]
            return 200, {"since": "x", "outcomes": ["failed", "succeeded"], "rows": rows}
        if name == "daemon.health":
            return 200, {"degraded": True, "file_ok": True}
        if name == "jobs.list":
            return 200, [_job("01KAAAAAAAAAAAAAAAAAAAAAA1", "dead")]
        if name == "jobs.show":
            job = _job(body["job_id"], "dead")
            run = {
                "run_id": "01KRUNRUNRUNRUNRUNRUNRUN01",
                "attempt": 1,
                "state": "failed",
                "started_at": None,
                "ended_at": None,
                "exit_code": 1,
            }
            ended = {
                "type": "run.ended",
                "origin": "hq",
                "seq": 9,
                "occurred_at": "2026-12-07T01:00:00.000Z",
                "actor": {"user": "orchd"},
                "payload": {"run_id": run["run_id"], "outcome": "failed", "output": HOSTILE},
            }
            return 200, {"job": job, "runs": [run], "events": [ended]}
        if name == "audit.tail" and body.get("type") == "bundle.quarantined":
            refused = {"file": HOSTILE, "reason": "signature", "error": HOSTILE}
            event = {"type": "bundle.quarantined", "occurred_at": "2026-12-07T00:00:00.000Z"}
            return 200, [{"position": 3, "event": event | {"payload": refused}}]
        return 200, CANNED.get(name, {"done": name})


CANNED: dict[str, Any] = {
    "schedules.list": [
        {
            "name": "nvd-hourly",
            "job_type": "feed-refresh",
            "source": "nvd",
            "cron": "5 * * * *",
            "timezone": "UTC",
            "last_slot": None,
            "last_job": None,
            "last_state": None,
            "next_slot": "2026-12-07T03:05:00.000Z",
            "due": 0,
            "skipped": 2,
            "paused": True,
        }
    ],
    "quota.show": [
        {
            "target": "source:nvd",
            "concurrency": 1,
            "rate": "12/hour",
            "burst": 3,
            "daily": None,
            "from": {"rate": "policy"},
            "usage": {"today": 4},
            "overrides": [{"reason": HOSTILE}],
        }
    ],
    "audit.tail": [
        {
            "position": 7,
            "subject": HOSTILE,
            "outcome": None,
            "event": {
                "type": "source.paused",
                "origin": "hq",
                "seq": 7,
                "occurred_at": "2026-12-07T00:00:00.000Z",
                "actor": {"user": "alice"},
                "reason": HOSTILE,
                "ticket": "OPS-1",
                "payload": {"source": "nvd"},
            },
        }
    ],
}


def _job(job_id: str, state: str) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "job_type": "feed-refresh",
        "source": "nvd",
        "state": state,
        "origin": "hq",
        "attempts": 3,
        "priority": 10,
        "submitted_at": "2026-12-07T00:00:00.000Z",
        "updated_at": "2026-12-07T01:00:00.000Z",
        "params": {"window": HOSTILE},
        "cause": None,
        "eligible_at": None,
        "schedule": None,
        "slot_at": None,
        "replay_of": None,
    }


def _status() -> dict[str, Any]:
    dead = _job("01KAAAAAAAAAAAAAAAAAAAAAA1", "dead")
    return {
        "site_id": "hq",
        "now": "2026-12-07T02:00:00.000Z",
        "origin": "hq",
        "states": {"dead": 1, "queued": 0},
        "running": [],
        "throttled": [],
        "dead": [dead],
        "failures": [],
        "freshness": [],
        "peers": [],
        "relay_only": [],
        "paused": [
            {
                "origin": "hq",
                "source": "nvd",
                "paused_at": "2026-12-07T00:00:00.000Z",
                "reason": HOSTILE,
            }
        ],
    }


def get(
    console: Console,
    path: str,
    *,
    uid: int = UID,
    cookie: str = "",
    host: str = HOST,
    scopes: tuple[str, ...] = ALL,
    acts: Actions | None = None,
) -> Reply:
    target, _, query = path.partition("?")
    headers = {"host": host} | ({"cookie": f"orchd_session={cookie}"} if cookie else {})
    asked = dict(pair.split("=", 1) for pair in query.split("&") if pair)
    return console.serve(Request("GET", target, asked, headers, uid, scopes), acts or Actions())


def post(
    console: Console,
    path: str,
    form: dict[str, str],
    *,
    cookie: str,
    origin: str | None = f"http://{HOST}",
    acts: Actions,
    scopes: tuple[str, ...] = ALL,
    fetched_from: str = "",
) -> Reply:
    headers = {"host": HOST, "cookie": f"orchd_session={cookie}"} | (
        {"origin": origin} if origin else {}
    )
    if fetched_from:
        headers["sec-fetch-site"] = fetched_from
    return console.serve(Request("POST", path, {}, headers, UID, scopes, form), acts)


def signed_in(console: Console, uid: int = UID) -> tuple[str, str]:
    """A session for ``uid``: its cookie value and CSRF token."""
    token = console.sessions.token(uid)
    done = get(console, f"/ui/login?token={token}", uid=uid)
    assert done.status == 303
    cookie = re.search(r"orchd_session=([^;]+)", dict(done.extra)["Set-Cookie"])[1]  # type: ignore[index]
    session = console.sessions.session(cookie, uid)
    assert session is not None
    return cookie, session.csrf


@pytest.fixture
def console() -> Console:
    return Console("hq")


def test_every_reply_carries_the_security_headers(console: Console) -> None:
    cookie, _ = signed_in(console)
    for reply in (
        get(console, "/ui/"),
        get(console, "/ui/", cookie=cookie),
        get(console, "/ui/nope", cookie=cookie),
        get(console, "/ui/", host="evil.example"),
    ):
        headers = dict(reply.headers())
        assert headers["Content-Security-Policy"] == CSP
        assert (headers["X-Frame-Options"], headers["X-Content-Type-Options"]) == (
            "DENY",
            "nosniff",
        )
        assert (headers["Referrer-Policy"], headers["Cache-Control"]) == ("no-referrer", "no-store")
    assert CSP == (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )


def test_a_token_is_spent_once_by_the_uid_it_was_made_for() -> None:
    now = [100.0]
    store = Sessions(clock=lambda: now[0])
    with pytest.raises(Refused, match="another user"):
        store.exchange(store.token(UID), OTHER)
    token = store.token(UID)
    cookie, session = store.exchange(token, UID)
    with pytest.raises(Refused, match="used already"):
        store.exchange(token, UID)
    assert store.session(cookie, UID) == session
    assert store.session(cookie, OTHER) is None  # a cookie counts only for its own uid
    late = store.token(UID)
    now[0] += sessions_module.TOKEN_TTL_S + 1
    with pytest.raises(Refused, match="expired"):
        store.exchange(late, UID)
    now[0] += sessions_module.SESSION_TTL_S
    assert store.session(cookie, UID) is None  # the session expired


def test_the_stores_are_bounded() -> None:
    store = Sessions()
    first = store.token(UID)
    for _ in range(sessions_module.MAX_TOKENS):
        store.token(UID)
    with pytest.raises(Refused):
        store.exchange(first, UID)  # the oldest was dropped


def test_login_sets_a_strict_cookie_and_drops_the_token_from_the_url(console: Console) -> None:
    token = console.sessions.token(UID)
    done = get(console, f"/ui/login?token={token}")
    extra = dict(done.extra)
    assert (done.status, extra["Location"]) == (303, "/ui/")
    cookie = extra["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui/" in cookie
    assert "Max-Age=" in cookie and "Domain" not in cookie
    assert get(console, f"/ui/login?token={token}").status == 403  # spent
    assert get(console, "/ui/login?token=forged").status == 403


def test_a_cookie_over_another_uids_connection_is_not_a_session(console: Console) -> None:
    cookie, _ = signed_in(console, UID)
    assert get(console, "/ui/", cookie=cookie).status == 200
    refused = get(console, "/ui/", cookie=cookie, uid=OTHER)
    assert refused.status == 401 and b"orchd console" in refused.body


@pytest.mark.parametrize(
    "host", ["evil.example:8765", "127.0.0.1", "localhost", "10.0.0.1:80", "", "localhost:80@x"]
)
def test_only_a_loopback_host_with_a_port_is_served(console: Console, host: str) -> None:
    cookie, _ = signed_in(console)
    assert get(console, "/ui/", cookie=cookie, host=host).status == 400


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:1", "[::1]:443", "127.1.2.3:9"])
def test_loopback_hosts_are_served(console: Console, host: str) -> None:
    cookie, _ = signed_in(console)
    assert get(console, "/ui/", cookie=cookie, host=host).status == 200


def test_a_caller_without_orch_read_is_refused_by_the_actions_path(console: Console) -> None:
    acts = Actions()
    refused = get(console, "/ui/", scopes=("orch:operate",), acts=acts)
    assert refused.status == 403 and acts.calls == [("status", {})]  # denied (and recorded) there
    denied = console.serve(
        Request("GET", "/ui/", {}, {"host": HOST}, UID, ()),
        lambda name, body: (403, {"error": "uid 1000 lacks the scope orch:read", "code": 71}),
    )
    assert denied.status == 403 and b"lacks the scope orch:read" in denied.body


def test_pages_render_hostile_text_inert_and_gets_only_read(console: Console) -> None:
    cookie, _ = signed_in(console)
    acts = Actions()
    for path in (
        "/ui/",
        "/ui/overview",
        "/ui/jobs?state=dead",
        "/ui/jobs/01KAAAAAAAAAAAAAAAAAAAAAA1",
        "/ui/schedules",
        "/ui/quotas",
        "/ui/peers",
        "/ui/audit?range=24h",
        "/ui/jobs.json",
    ):
        reply = get(console, path, cookie=cookie, acts=acts)
        assert reply.status == 200, (path, reply.body[:300])
        if path.endswith(".json"):  # data, never a document: nosniff, and no HTML
            assert reply.content_type == "application/json"
            continue
        assert b"<script>alert" not in reply.body and b"<img src=x" not in reply.body, path
    overview = get(console, "/ui/", cookie=cookie, acts=acts).body.decode()
    assert "&lt;script&gt;alert(" in overview  # the pause's reason, escaped
    assert "Storage degraded" in overview and "site <strong>hq</strong>" in overview
    job = get(
        console, "/ui/jobs/01KAAAAAAAAAAAAAAAAAAAAAA1", cookie=cookie, acts=acts
    ).body.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in job  # the run's output, escaped
    assert "<script src=" in overview and not re.search(
        r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", overview
    )
    assert " style=" not in overview and "<style" not in overview
    reads = {
        "status",
        "runs.hourly",
        "daemon.health",
        "jobs.list",
        "jobs.show",
        "schedules.list",
        "quota.show",
        "audit.tail",
    }
    assert {name for name, _ in acts.calls} <= reads


def test_the_json_twin_is_the_actions_answer(console: Console) -> None:
    cookie, _ = signed_in(console)
    twin = get(console, "/ui/jobs.json?state=dead", cookie=cookie)
    assert twin.content_type == "application/json"
    assert json.loads(twin.body) == [_job("01KAAAAAAAAAAAAAAAAAAAAAA1", "dead")]
    overview = json.loads(get(console, "/ui/overview.json", cookie=cookie).body)
    assert overview["site_id"] == "hq" and overview["runs_per_hour"]["rows"][0]["total"] == 3


def test_forms_need_the_sessions_csrf_token_and_the_consoles_origin(console: Console) -> None:
    cookie, csrf = signed_in(console)
    form = {
        "csrf": csrf,
        "source": "nvd",
        "reason": "feed broken",
        "ticket": "OPS-1",
        "next": "/ui/schedules",
    }
    for origin, given in (
        (f"http://{HOST}", {**form, "csrf": "stale"}),
        ("http://evil.example", form),
        (None, form),
        (f"http://{HOST}", {k: v for k, v in form.items() if k != "csrf"}),
    ):
        acts = Actions()
        refused = post(console, "/ui/sources/pause", given, cookie=cookie, origin=origin, acts=acts)
        assert refused.status == 403 and acts.calls == [], origin
    for fetched_from in ("cross-site", "same-site", ""):  # Origin: null from elsewhere
        acts = Actions()
        null = post(
            console,
            "/ui/sources/pause",
            form,
            cookie=cookie,
            origin="null",
            acts=acts,
            fetched_from=fetched_from,
        )
        assert null.status == 403 and acts.calls == [], fetched_from
    acts = Actions()  # what a browser sends under Referrer-Policy: no-referrer
    same = post(
        console,
        "/ui/sources/pause",
        form,
        cookie=cookie,
        origin="null",
        acts=acts,
        fetched_from="same-origin",
    )
    assert same.status == 303 and [name for name, _ in acts.calls] == ["sources.pause"]
    acts = Actions()
    done = post(console, "/ui/sources/pause", form, cookie=cookie, acts=acts)
    assert (done.status, dict(done.extra)["Location"]) == (303, "/ui/schedules")
    assert acts.calls == [
        ("sources.pause", {"source": "nvd", "reason": "feed broken", "ticket": "OPS-1"})
    ]
    acts = Actions()
    away = post(
        console,
        "/ui/jobs/cancel",
        {**form, "job_id": "X", "next": "//evil.example/"},
        cookie=cookie,
        acts=acts,
    )
    assert dict(away.extra)["Location"] == "/ui/"  # never sent off the console


def test_a_bulk_replay_shows_the_count_and_asks_first(console: Console) -> None:
    cookie, csrf = signed_in(console)
    form = {"csrf": csrf, "job_ids": "01KA,01KB,01KC", "reason": "feed back", "ticket": "OPS-2"}
    acts = Actions()
    asked = post(console, "/ui/replay", form, cookie=cookie, acts=acts)
    assert asked.status == 200 and b"Replay 3 dead job(s)?" in asked.body and acts.calls == []
    done = post(console, "/ui/replay", form | {"confirm": "yes"}, cookie=cookie, acts=acts)
    assert done.status == 303
    assert acts.calls == [
        ("replay", {"job_ids": ["01KA", "01KB", "01KC"], "reason": "feed back", "ticket": "OPS-2"})
    ]


def test_static_files_are_named_by_their_hash_and_cached(console: Console) -> None:
    name = console.static.url("htmx.min.js").removeprefix("/ui/static/")
    served = get(console, f"/ui/static/{name}")
    assert served.status == 200 and served.cache == "public, max-age=31536000, immutable"
    assert served.content_type == "text/javascript"
    assert get(console, "/ui/static/htmx.min.js").status == 404  # only hashed names


def test_a_form_body_of_another_type_is_no_form() -> None:
    assert parse_form("application/json", b'{"csrf": "x"}') == {}
    assert parse_form("application/x-www-form-urlencoded", b"\xff\xfe") == {}
    assert parse_form("application/x-www-form-urlencoded; charset=utf-8", b"a=1&a=2&b=") == {
        "a": "2",
        "b": "",
    }


def test_the_vendored_files_are_the_ones_recorded() -> None:
    import hashlib
    from pathlib import Path

    static = Path(__file__).parents[2] / "orchd/adapters/console/static"
    table = (static / "licenses/README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| ([0-9a-f]{64}) \|$", table, re.M)
    assert {name for name, _ in rows} == {"htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css"}
    for name, digest in rows:
        assert hashlib.sha256((static / name).read_bytes()).hexdigest() == digest, name
    assert (static / "licenses/htmx-LICENSE.txt").exists()
    assert (static / "licenses/uPlot-LICENSE.txt").exists()


def test_a_page_and_everything_it_loads_weigh_under_150_kb_compressed(console: Console) -> None:
    import gzip

    cookie, _ = signed_in(console)
    page = get(console, "/ui/", cookie=cookie).body
    loaded = re.findall(rb'(?:src|href)="/ui/static/([^"]+)"', page)
    assert len(loaded) == 6  # the icon, two stylesheets, three scripts
    files = [console.static.files[name.decode()][0] for name in loaded]
    total = sum(len(gzip.compress(data, 9)) for data in [page, *files])
    assert total < 150 * 1024, total


def _luminance(color: str) -> float:
    channels = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(fg: str, bg: str) -> float:
    light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_every_text_colour_on_its_background_has_a_contrast_of_4_5_or_more() -> None:
    from pathlib import Path

    css = (Path(__file__).parents[2] / "orchd/adapters/console/static/console.css").read_text()
    var = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-f]{6})", css))
    pairs = [  # (text, background) as the stylesheet sets them
        ("fg", "bg"),
        ("muted", "bg"),
        ("link", "bg"),
        ("bad", "bg"),
        ("fg", "head"),
        ("bad", "bad-bg"),
        ("warn", "warn-bg"),
        ("muted", "head"),
    ]
    for fg, bg in pairs:
        assert _contrast(var[fg], var[bg]) >= 4.5, (fg, bg, _contrast(var[fg], var[bg]))
    assert _contrast("#ffffff", "#14202e") >= 4.5  # the header
    assert _contrast("#1b1f24", "#f6f8fa") >= 4.5  # job output


def test_the_overview_shows_a_banner_for_each_degraded_state(console: Console) -> None:
    cookie, _ = signed_in(console)

    def acts(name: str, body: dict[str, Any]) -> tuple[int, Any]:
        if name == "daemon.health":
            return 200, {"degraded": False, "file_ok": False}
        if name == "status":
            relayed = {"origin": "far", "seq": 9, "bundle_id": "01KB"}
            return 200, _status() | {"relay_only": [relayed]}
        return Actions()(name, body)

    shown = console.serve(
        Request("GET", "/ui/", {}, {"host": HOST, "cookie": f"orchd_session={cookie}"}, UID, ALL),
        acts,
    ).body.decode()
    assert "whole-file check failed" in shown and "Relay-only data" in shown and "far" in shown
    assert "Storage degraded" not in shown
    console.pages._cache.clear()  # answers are kept 3 s: ask the daemon anew
    calm = get(console, "/ui/", cookie=cookie).body.decode()  # degraded storage, nothing else
    assert "Storage degraded" in calm and "Relay-only" not in calm
    assert "whole-file check failed" not in calm
