"""Creating a site: the first event of its chain (ops layer)."""

from __future__ import annotations

from orchd.core.events import Actor, Draft
from orchd.core.names import check_name

SCOPE = "orch:admin"


def initialized(site_id: str, actor: Actor, orchd_version: str) -> Draft:
    """The ``site.initialized`` event that opens a new site's chain."""
    check_name("site id", site_id)
    return Draft(
        type="site.initialized",
        actor=actor,
        idempotency_key="site.initialized",
        payload={"site_id": site_id, "orchd_version": orchd_version},
    )
