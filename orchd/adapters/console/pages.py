"""The console's pages: which read actions each page asks, its JSON twin (what the CLI's
``--json`` prints), its template, and the forms that act (adapters layer).

Rules:
- A page reads through the daemon's read actions only (off the loop, on a connection of their
  own, bounded in rows: ``PAGE`` jobs, ``AUDIT_PAGE`` events), at most ``RENDERS`` at once, and
  an action's answer is kept ``CACHE_S`` for the same caller and question.
- Everything the ledger holds is hostile text: the templates autoescape, and nothing is marked
  safe.
- A form acts through the same actions as the CLI, with the reason and ticket the policy
  requires; a bulk replay shows its count and asks to confirm before it acts.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import jinja2

from orchd.core import timefmt
from orchd.core.machines import JOB

from .sessions import Session
from .web import Act, Reply, Request, json_reply, redirect

PAGE, AUDIT_PAGE = 50, 50
RENDERS, RENDER_WAIT_S, CACHE_S = 2, 10.0, 3.0
RANGES = {"1h": "-1h", "24h": "-24h", "7d": "-7d", "30d": "-30d"}  # the time range menu
JOB_STATES = tuple(JOB.transitions)  # the state menu, in the machine's own order
NAV = (
    ("overview", "Overview"),
    ("jobs", "Jobs"),
    ("schedules", "Schedules"),
    ("quotas", "Quotas"),
    ("peers", "Peers"),
    ("audit", "Audit"),
)
FORMS = {  # form name -> (action, the fields it passes on)
    "sources/pause": ("sources.pause", ("source",)),
    "sources/resume": ("sources.resume", ("source",)),
    "jobs/cancel": ("jobs.cancel", ("job_id",)),
}


class Failed(Exception):
    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status, payload)
        self.status, self.payload = status, payload


class Pages:
    def __init__(self, site_id: str, static_url: Callable[[str], str]) -> None:
        self.site_id = site_id
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader(__package__, "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(static=static_url, site_id=site_id, nav=NAV, short=_short)
        self.env.filters["when"] = _when
        self._renders = threading.BoundedSemaphore(RENDERS)
        self._cache: dict[str, tuple[float, int, Any]] = {}
        self._cache_lock = threading.Lock()

    # --- reading ---------------------------------------------------------------------------

    def ask(self, act: Act, request: Request, name: str, body: dict[str, Any]) -> Any:
        """Action ``name``'s answer for this caller, kept ``CACHE_S``; an error raises."""
        key = json.dumps([name, body, request.uid, request.scopes], sort_keys=True)
        now = time.monotonic()
        with self._cache_lock:
            found = self._cache.get(key)
            if found is None or found[0] < now:
                found = None
                for stale in [k for k, v in self._cache.items() if v[0] < now]:
                    del self._cache[stale]
        if found is None:
            status, payload = act(name, body)
            found = (now + CACHE_S, status, payload)
            if status == 200:
                with self._cache_lock:
                    self._cache[key] = found
        if found[1] != 200:
            raise Failed(found[1], found[2])
        return found[2]

    def render(self, rest: str, request: Request, session: Session, act: Act) -> Reply:
        """The page at ``/ui/REST`` (or its JSON twin, ``REST.json``)."""
        twin = rest.endswith(".json")
        name = rest.removesuffix(".json") or "overview"
        view = _VIEWS.get("jobs/" if name.startswith("jobs/") else name)
        if view is None:
            return self._error(request, session, 404, {"error": f"no page /ui/{rest}"})
        if not self._renders.acquire(timeout=RENDER_WAIT_S):
            return self._error(request, session, 503, {"error": "the console is busy: retry"})
        try:
            data, context = view(self, request, act, name)
        except Failed as failed:
            if twin:
                return json_reply(failed.status, failed.payload)
            return self._error(request, session, failed.status, failed.payload)
        finally:
            self._renders.release()
        if twin:
            return json_reply(200, data)
        return self.page(context.pop("template"), request, session, context)

    def page(
        self, template: str, request: Request, session: Session | None, context: dict[str, Any]
    ) -> Reply:
        query = "?" + urlencode(request.query) if request.query else ""
        twin = request.path.rstrip("/") if request.path.rstrip("/") != "/ui" else "/ui/overview"
        html = self.env.get_template(template).render(
            request=request,
            csrf=session.csrf if session else "",
            here=request.path + query,
            twin=twin + ".json" + query,
            **context,
        )
        return Reply(context.get("status", 200), html.encode())

    def signed_out(self) -> Reply:
        html = self.env.get_template("signed_out.html").render()
        return Reply(401, html.encode())

    def _error(self, request: Request, session: Session, status: int, payload: Any) -> Reply:
        error = payload if isinstance(payload, dict) else {"error": str(payload)}
        return self.page(
            "error.html", request, session, {"error": error, "status": status, "current": ""}
        )

    # --- acting -----------------------------------------------------------------------------

    def act(self, rest: str, request: Request, session: Session, act: Act) -> Reply:
        """A form: the action it names, with the reason and ticket given, as the caller."""
        form = request.form
        with self._cache_lock:  # the next page shows what the form changed
            self._cache.clear()
        back = form.get("next", "/ui/")
        back = back if back.startswith("/ui/") and "//" not in back else "/ui/"
        why = {"reason": form.get("reason") or None, "ticket": form.get("ticket") or None}
        if rest == "replay":
            return self._replay(request, session, act, why, back)
        chosen = FORMS.get(rest)
        if chosen is None:
            return self._error(request, session, 404, {"error": f"no form /ui/{rest}"})
        name, fields = chosen
        return self._acted(
            request, session, act(name, {f: form.get(f, "") for f in fields} | why), back
        )

    def _replay(
        self, request: Request, session: Session, act: Act, why: dict[str, Any], back: str
    ) -> Reply:
        """A bulk replay of the jobs a page listed (``job_ids``, at most ``PAGE``): first their
        count and a confirmation, then (``confirm=yes``) one replay of them all."""
        chosen = [i for i in request.form.get("job_ids", "").split(",") if i][: PAGE + 1]
        if len(chosen) > PAGE:
            return self._error(request, session, 400, {"error": f"at most {PAGE} jobs at once"})
        if request.form.get("confirm") != "yes" or not chosen:
            context = {"current": "jobs", "jobs": chosen, "form": request.form, "back": back}
            return self.page("replay_confirm.html", request, session, context)
        return self._acted(request, session, act("replay", {"job_ids": chosen} | why), back)

    def _acted(
        self, request: Request, session: Session, answer: tuple[int, Any], back: str
    ) -> Reply:
        """Back to the page the form came from, or the action's refusal."""
        status, payload = answer
        if status != 200:
            return self._error(request, session, status, payload)
        return redirect(back)


# --- the views: (data for the JSON twin, the template's context) ---------------------------------

View = Callable[[Pages, Request, Act, str], tuple[Any, dict[str, Any]]]


def _overview(pages: Pages, request: Request, act: Act, name: str) -> tuple[Any, dict[str, Any]]:
    status = pages.ask(act, request, "status", {})
    hourly = pages.ask(act, request, "runs.hourly", {})
    health = pages.ask(act, request, "daemon.health", {})
    context = {"template": "overview.html", "current": "overview", "s": status}
    context |= {"hourly": hourly, "health": health}
    return status | {"runs_per_hour": hourly, "health": health}, context


def _jobs(pages: Pages, request: Request, act: Act, name: str) -> tuple[Any, dict[str, Any]]:
    q = request.query
    chosen = {k: q[k] for k in ("state", "job_type", "source", "origin", "after") if q.get(k)}
    if (since := _since(q)) is not None:
        chosen["since"] = since
    found = pages.ask(act, request, "jobs.list", chosen | {"limit": PAGE + 1})
    more = len(found) > PAGE
    found = found[:PAGE]
    following = None
    if more:
        following = {k: v for k, v in q.items() if k != "after"} | {"after": found[-1]["job_id"]}
    context = {
        "template": "jobs.html",
        "current": "jobs",
        "jobs": found,
        "q": q,
        "states": JOB_STATES,
        "ranges": list(RANGES),
        "next_page": "/ui/jobs?" + urlencode(following) if following else None,
    }
    return found, context


def _job(pages: Pages, request: Request, act: Act, name: str) -> tuple[Any, dict[str, Any]]:
    shown = pages.ask(act, request, "jobs.show", {"job_id": name.removeprefix("jobs/")})
    ends = {
        e["payload"]["run_id"]: e["payload"]
        for e in shown.get("events", [])
        if e["type"] == "run.ended" and isinstance(e["payload"].get("run_id"), str)
    }
    log = shown.get("log") or {}
    newest = max(shown.get("runs", []), key=lambda r: r["attempt"], default=None)
    ended = ends.get(newest["run_id"], {}) if newest else {}
    output = log.get("so_far") if log.get("so_far") is not None else ended.get("output")
    context = {
        "template": "job.html",
        "current": "jobs",
        "shown": shown,
        "ends": ends,
        "output": output,
        "log_path": log.get("path"),
    }
    return shown, context


def _listing(action: str, template: str, current: str) -> View:
    def view(pages: Pages, request: Request, act: Act, name: str) -> tuple[Any, dict[str, Any]]:
        found = pages.ask(act, request, action, {})
        return found, {"template": template, "current": current, "rows": found}

    return view


def _peers(pages: Pages, request: Request, act: Act, name: str) -> tuple[Any, dict[str, Any]]:
    status = pages.ask(act, request, "status", {})
    refused = pages.ask(act, request, "audit.tail", {"type": "bundle.quarantined", "limit": 20})
    data = {"peers": status["peers"], "relay_only": status["relay_only"]}
    data["quarantined"] = [item["event"] for item in reversed(refused)]
    return data, {"template": "peers.html", "current": "peers", **data}


def _audit(pages: Pages, request: Request, act: Act, name: str) -> tuple[Any, dict[str, Any]]:
    q = request.query
    chosen: dict[str, Any] = {k: q[k] for k in ("type", "origin", "actor", "ticket") if q.get(k)}
    if (since := _since(q)) is not None:
        chosen["since"] = since
    found = pages.ask(act, request, "audit.tail", chosen | {"limit": AUDIT_PAGE})
    found = list(reversed(found))  # the newest first
    context = {"template": "audit.html", "current": "audit", "items": found, "q": q}
    return found, context | {"ranges": list(RANGES)}


_VIEWS: dict[str, View] = {
    "overview": _overview,
    "jobs": _jobs,
    "jobs/": _job,
    "schedules": _listing("schedules.list", "schedules.html", "schedules"),
    "quotas": _listing("quota.show", "quotas.html", "quotas"),
    "peers": _peers,
    "audit": _audit,
}


def _since(query: Any) -> str | None:
    """The start of the time range the URL names (``range=24h``), as the ledger writes times."""
    ago = RANGES.get(query.get("range", ""))
    if ago is None:
        return None
    return timefmt.format_ms(timefmt.parse_operator(ago, int(time.time() * 1000)))


def _short(ident: str | None) -> str:
    return "" if not ident else ident[-8:]


def _when(text: str | None) -> str:
    """A ledger time as the console shows it: to the second, UTC."""
    if not text:
        return ""
    return text[:19].replace("T", " ") + "Z"
