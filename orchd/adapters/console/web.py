"""One console request and its reply, without the socket: the Host, the scope, the session,
the static files, the pages and their JSON twins, the forms (adapters layer).

Rules (docs/CONSOLE.md):
- Every reply carries ``HEADERS`` (the CSP, no framing, no caching, no sniffing, no referrer);
  a static file's name holds its content hash, and only those are cached.
- The Host must be a loopback name or address with a port; the caller needs ``orch:read``
  (checked on every request, as the CLI's is); every page needs a session cookie issued to the
  connection's uid (``sessions.py``).
- A GET never writes: pages read through the read actions. A form is a POST whose Origin is
  the console's own and whose CSRF token is the session's; its action is checked against the
  caller's scopes by the same path as the CLI's (the daemon's ``Calls``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlencode

from .sessions import COOKIE, SESSION_TTL_S, Refused, Session, Sessions

if TYPE_CHECKING:
    from .pages import Pages

READ_SCOPE = "orch:read"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)
NO_STORE, IMMUTABLE = "no-store", "public, max-age=31536000, immutable"
HTML, JSON = "text/html; charset=utf-8", "application/json"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# a loopback name or address, then a port: what a browser sends for the forwarded port
LOOPBACK_HOST = re.compile(r"^(localhost|127(\.\d{1,3}){3}|\[::1\]):\d{1,5}$")
MAX_FORM = 16 * 1024

# an action: (method, path, body) -> (status, payload), run by the daemon as the caller
Act = Callable[[str, dict[str, Any]], tuple[int, Any]]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # without the query
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    uid: int
    scopes: tuple[str, ...]
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    content_type: str = HTML
    cache: str = NO_STORE
    extra: tuple[tuple[str, str], ...] = ()

    def headers(self) -> list[tuple[str, str]]:
        return [*HEADERS, ("Cache-Control", self.cache), *self.extra]


def parse_form(content_type: str, raw: bytes) -> dict[str, str]:
    """An urlencoded form body (at most ``MAX_FORM`` bytes, checked by the caller), its last
    value of each name; anything else is an empty form (the CSRF check then refuses it)."""
    if content_type.split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def cookie_of(headers: Mapping[str, str]) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


class Static:
    """The vendored and own assets, each served under a name that holds its content hash."""

    def __init__(self) -> None:
        folder = resources.files(__package__) / "static"
        self.files: dict[str, tuple[bytes, str]] = {}  # hashed name -> content, type
        self.names: dict[str, str] = {}  # plain name -> hashed name
        for item in folder.iterdir():
            if not item.is_file():
                continue
            data = item.read_bytes()
            stem, dot, ext = item.name.rpartition(".")
            hashed = f"{stem}.{hashlib.sha256(data).hexdigest()[:12]}{dot}{ext}"
            self.files[hashed] = (data, STATIC_TYPES.get(f".{ext}", "application/octet-stream"))
            self.names[item.name] = hashed

    def url(self, name: str) -> str:
        return f"/ui/static/{self.names[name]}"

    def reply(self, name: str) -> Reply:
        found = self.files.get(name)
        if found is None:
            return Reply(404, b"no such file", "text/plain; charset=utf-8")
        return Reply(200, found[0], found[1], IMMUTABLE)


class Console:
    """Routes ``/ui/`` requests: one per daemon, shared by the server's threads."""

    def __init__(self, site_id: str, sessions: Sessions | None = None) -> None:
        self.site_id = site_id
        self.sessions = Sessions() if sessions is None else sessions
        self.static = Static()

    @cached_property
    def pages(self) -> Pages:
        from .pages import Pages  # Jinja2 and the templates: only once a page is asked for

        return Pages(self.site_id, self.static.url)

    def token(self, uid: int, scopes: tuple[str, ...], act: Act) -> tuple[int, Any]:
        """``POST /v1/console/token``: a single-use token for the caller's uid (a caller
        without ``orch:read`` is refused, and recorded, by the same path as the CLI's)."""
        if READ_SCOPE not in scopes:
            return act("status", {})
        token = self.sessions.token(uid)
        return 200, {"token": token, "path": "/ui/login?" + urlencode({"token": token})}

    def serve(self, request: Request, act: Act) -> Reply:
        host = request.headers.get("host", "")
        if not LOOPBACK_HOST.match(host):
            return _plain(
                400, f"the console answers only a loopback Host with a port, not {host[:80]!r}"
            )
        if READ_SCOPE not in request.scopes:  # refused and recorded as the CLI's would be
            _, payload = act("status", {})
            return _plain(403, str(payload.get("error", "refused")))
        rest = request.path.removeprefix("/ui/")
        if request.method == "GET" and rest.startswith("static/"):
            return self.static.reply(rest.removeprefix("static/"))
        if request.method == "GET" and rest == "login":
            return self._login(request)
        session = self.sessions.session(cookie_of(request.headers), request.uid)
        if session is None:
            return self.pages.signed_out()
        if request.method == "POST":
            return self._form(request, session, rest, act)
        if request.method != "GET":
            return _plain(405, "the console takes GET and POST only")
        return self.pages.render(rest, request, session, act)

    def _login(self, request: Request) -> Reply:
        try:
            cookie, _ = self.sessions.exchange(request.query.get("token", ""), request.uid)
        except Refused as exc:
            return _plain(403, str(exc))
        value = f"{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path=/ui/; Max-Age={SESSION_TTL_S}"
        return Reply(303, b"", extra=(("Set-Cookie", value), ("Location", "/ui/")))

    def _form(self, request: Request, session: Session, rest: str, act: Act) -> Reply:
        origin = request.headers.get("origin")
        # with Referrer-Policy no-referrer a browser sends "Origin: null" on a form's POST; it
        # then says where the form came from in Sec-Fetch-Site, which no page may set
        same = origin == f"http://{request.headers.get('host', '')}" or (
            origin == "null" and request.headers.get("sec-fetch-site") == "same-origin"
        )
        if not same:
            return _plain(403, f"a form from another origin ({(origin or 'none')[:80]}) is refused")
        if not hmac.compare_digest(request.form.get("csrf", ""), session.csrf):
            return _plain(403, "the form's CSRF token is missing or stale: reload the page")
        if rest == "logout":
            self.sessions.end(cookie_of(request.headers))
            gone = f"{COOKIE}=; HttpOnly; SameSite=Strict; Path=/ui/; Max-Age=0"
            return Reply(303, b"", extra=(("Set-Cookie", gone), ("Location", "/ui/")))
        return self.pages.act(rest, request, session, act)


def _plain(status: int, text: str) -> Reply:
    return Reply(status, text.encode() + b"\n", "text/plain; charset=utf-8")


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload, indent=2, sort_keys=True).encode() + b"\n", JSON)


def redirect(location: str) -> Reply:
    return Reply(303, b"", extra=(("Location", quote(location, safe="/?=&%-_.~:")),))
