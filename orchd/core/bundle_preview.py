"""What a bundle brings that an operator weighs before importing it (core layer): the requests
addressed to this site (each becomes a job here, or a refusal), the quota overrides that would
apply here (another site's, for every site or for this one), and the keys this site would trust
(rotation statements followed to a new key). ``bundle import --dry-run`` and ``bundle verify``
show them; counts by type alone do not say what changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orchd.core.events import Draft, Event

ALL_SITES = "*"
QUOTA_CHANGES = {"quota.set": "set", "quota.reset": "reset"}


@dataclass(slots=True)
class Preview:
    local: str  # this site's id
    requests: list[dict[str, Any]] = field(default_factory=list)
    overrides: list[dict[str, Any]] = field(default_factory=list)
    trusts: list[dict[str, Any]] = field(default_factory=list)

    def add(self, batch: Iterable[Event]) -> None:
        """Note what of another origin's events concerns this site."""
        for event in batch:
            if event.origin == self.local:
                continue
            p = event.payload
            if event.type == "job.requested" and p["site"] == self.local:
                self.requests.append(
                    {
                        "request_id": p["request_id"],
                        "from": event.origin,
                        "job_type": p["job_type"],
                        "params": dict(p["params"]),
                        "source": p.get("source"),
                        "priority": p.get("priority"),
                    }
                )
            elif event.type in QUOTA_CHANGES and p["site"] in (ALL_SITES, self.local):
                change = {k: v for k, v in p.items() if k not in ("kind", "name", "site")}
                self.overrides.append(
                    {
                        "from": event.origin,
                        "change": QUOTA_CHANGES[event.type],
                        "target": f"{p['kind']}:{p['name']}",
                        "site": p["site"],
                        "values": change,
                    }
                )

    def note_records(self, drafts: Iterable[Draft]) -> None:
        """Note what the import would record of its own: the keys it would trust."""
        for draft in drafts:
            if draft.type == "key.trusted":
                p = draft.payload
                self.trusts.append(
                    {"site": p["site"], "key_id": p["key_id"], "vouched_by": p.get("vouched_by")}
                )

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "overrides": self.overrides, "trusts": self.trusts}
