"""Who may publish and subscribe where, as a NATS server's ``authorization`` block (adapters
layer): the daemon knows a worker only by the subjects its NATS user may publish on, so these
permissions are the worker's identity, and the server enforces them.

A worker ``W`` of site ``S`` may publish only its claims, heartbeats and results
(``orchd.S.{claim,hb,results}.W``), ask its job types' pull consumers for work and acknowledge
what they delivered; it may subscribe only to its own inbox (``_INBOX_S_W.>``: a client connects
with that ``inbox_prefix``), so it reads neither another worker's replies nor the daemon's. The
daemon may publish and subscribe anywhere under its site, use the JetStream API, read its own
inbox, and answer a request on the asker's inbox (``allow_responses``: no other publish there).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from orchd.core import remote
from orchd.errors import BadInput, InvalidName

WORKER_SUBJECTS = ("claim", "hb", "results")


def work_stream(site: str) -> str:
    """The work-queue stream of a site's runs (``orchd.SITE.work.>``)."""
    return f"ORCHD_{site.upper().replace('-', '_')}_WORK"


def consumer(job_type: str) -> str:
    """The durable pull consumer of a job type's runs."""
    return f"type_{job_type}"


def undeliverable_subject(site: str) -> str:
    """JetStream's advisory of an offer it stopped delivering (``max_deliver`` reached)."""
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{work_stream(site)}.*"


def inbox(site: str, who: str) -> str:
    """The inbox prefix a client of the site connects with (a worker's name, or ``daemon``)."""
    return f"_INBOX_{site}_{who}"


def credentials(user: str | None, password: str | None, nkey_seed: str | None) -> dict[str, Any]:
    """``nats.connect``'s credentials: an nkey seed, else a user and password (or none)."""
    if nkey_seed is not None:
        return {"nkeys_seed_str": nkey_seed}
    return {"user": user, "password": password}


def nkey_public(seed: str) -> str:
    """The public nkey (U...) of a user's seed (SU...), for the server's authorization block."""
    import nkeys

    try:
        return str(nkeys.from_seed(seed.encode()).public_key.decode())
    except Exception as exc:  # nkeys raises its own errors and binascii's
        raise BadInput(detail=f"not an nkey seed ({type(exc).__name__})") from None


def tls_options(ca_file: str | None) -> dict[str, Any]:
    """``nats.connect``'s TLS: with ``ca_file``, TLS from the first byte (before the server
    says anything, so no server, true or false, is ever sent the credentials in clear; the
    server's ``tls`` block needs ``handshake_first: true``), the server verified against the
    CA, its host name too. Refused at once when the file is not a CA's PEM certificate."""
    if ca_file is None:
        return {}
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise BadInput(detail=f"the CA file {ca_file} cannot be used: {detail}") from None
    return {"tls": context, "tls_handshake_first": True}


def worker(site: str, name: str, job_types: Iterable[str]) -> dict[str, Any]:
    """The permissions of worker ``name``, which may run ``job_types``."""
    if name == "daemon":  # the daemon's inbox is named so
        raise InvalidName(what="worker", value=name, expected="a name other than daemon")
    stream = work_stream(site)
    types = sorted(set(job_types))
    publish = [remote.subject(site, what, name) for what in WORKER_SUBJECTS]
    for job_type in types:
        publish += [
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer(job_type)}",
            f"$JS.API.CONSUMER.INFO.{stream}.{consumer(job_type)}",
            f"$JS.ACK.{stream}.{consumer(job_type)}.>",
        ]
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": [f"{inbox(site, name)}.>"]},
    }


def daemon(site: str) -> dict[str, Any]:
    """The permissions of the site's daemon."""
    return {
        "publish": {"allow": [f"orchd.{site}.>", "$JS.API.>", "$JS.ACK.>"]},
        "subscribe": {"allow": [f"orchd.{site}.>", f"{inbox(site, 'daemon')}.>"]},
        "allow_responses": True,  # its answers to claims and heartbeats, on the asker's inbox
    }


def authorization(
    site: str, daemon_user: Mapping[str, str], workers: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """A server's ``authorization`` block: the daemon's user (``{"user", "password"}`` or
    ``{"nkey"}``) and each worker's (name -> ``{"password" or "nkey", "job_types"}``), each with
    its permissions. A worker with an nkey is known by it; its name is still its subjects'."""
    users = [{**daemon_user, "permissions": daemon(site)}]
    for name, entry in sorted(workers.items()):
        who = {"nkey": entry["nkey"]} if "nkey" in entry else {"user": name}
        if "password" in entry:
            who["password"] = entry["password"]
        users.append({**who, "permissions": worker(site, name, entry["job_types"])})
    return {"users": users}
