"""The console's tokens and sessions, held in the daemon's memory (adapters layer).

Rules (docs/CONSOLE.md):
- A token is asked for over the control socket (``orchd console``), by a caller with
  ``orch:read``. It is bound to that caller's uid, lives ``TOKEN_TTL_S`` and is spent by its
  first use, whoever presents it.
- Spending it on a connection of the same uid (SO_PEERCRED) gives a session: a random cookie
  value bound to that uid, expiring ``SESSION_TTL_S`` after it was made, and the session's CSRF
  token, which every form carries.
- A cookie counts only on a connection of the uid it was issued to. Nothing here is written to
  disk: a restarted daemon asks for a new token.
- Both stores are bounded: a flood of tokens or logins drops the oldest, never grows the daemon.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_TTL_S = 120
SESSION_TTL_S = 8 * 3600
MAX_TOKENS, MAX_SESSIONS = 64, 256
COOKIE = "orchd_session"


@dataclass(frozen=True, slots=True)
class Session:
    uid: int
    csrf: str
    expires: float  # on the monotonic clock


class Refused(Exception):
    """A token that cannot be spent: unknown (or spent), expired, or another uid's."""


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: OrderedDict[str, tuple[int, float]] = OrderedDict()
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def token(self, uid: int) -> str:
        """A new single-use token for ``uid``."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (uid, self._clock() + TOKEN_TTL_S)
            while len(self._tokens) > MAX_TOKENS:
                self._tokens.popitem(last=False)
        return token

    def exchange(self, token: str, uid: int) -> tuple[str, Session]:
        """Spend ``token`` on a connection of ``uid``: the new cookie value and its session.
        The token is gone whether or not this succeeds."""
        with self._lock:
            found = self._tokens.pop(token, None)
            if found is None:
                raise Refused(
                    "this console link was used already, or is not one: run `orchd console` again"
                )
            owner, expires = found
            if self._clock() > expires:
                raise Refused(
                    f"this console link expired ({TOKEN_TTL_S} s): run `orchd console` again"
                )
            if owner != uid:
                raise Refused("this console link was made for another user")
            cookie = secrets.token_urlsafe(32)
            session = Session(uid, secrets.token_urlsafe(32), self._clock() + SESSION_TTL_S)
            self._sessions[cookie] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return cookie, session

    def session(self, cookie: str | None, uid: int) -> Session | None:
        """The live session of ``cookie`` if it was issued to ``uid``."""
        if not cookie:
            return None
        with self._lock:
            found = self._sessions.get(cookie)
            if found is None:
                return None
            if self._clock() > found.expires:
                del self._sessions[cookie]
                return None
        return found if found.uid == uid else None

    def end(self, cookie: str | None) -> None:
        with self._lock:
            self._sessions.pop(cookie or "", None)
