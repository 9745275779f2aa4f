"""Who may do what over the control socket: ``authz.yaml``'s grants and the scopes of a caller
known by its kernel credentials (adapters layer).

Scopes come from ``authz.yaml`` in the policy dir (``grants: [{uid|gid|user|group, scopes}]``);
without that file only the daemon's own user is granted every scope. uid 0 gets nothing it is
not granted.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchd.adapters.yamlkeys import At, Key, choice, integer, key, list_of, read_document, record
from orchd.errors import PolicyInvalid

SCOPES = ("orch:read", "orch:operate", "orch:quota", "orch:backfill", "orch:bundle", "orch:admin")
_WHO = ("uid", "gid", "user", "group")  # a grant names at least one of these


def _optional_name(node: yaml.Node, at: At) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str) or not value:
        raise at.error("expected a user or group name")
    return value


GRANT_KEYS: dict[str, Key] = {
    "uid": key(integer(0, 2**32 - 2), "int", "-", "1001", "a user id"),
    "gid": key(integer(0, 2**32 - 2), "int", "-", "1001", "a group id (primary or supplementary)"),
    "user": key(_optional_name, "text", "-", "alice", "a user name"),
    "group": key(_optional_name, "text", "-", "orchd-operators", "a group name"),
    "scopes": key(
        list_of(choice(*SCOPES), min_items=1),
        "list of scopes",
        "(required)",
        "[orch:read, orch:operate]",
        "what the matching callers may do",
        required=True,
    ),
}
AUTHZ_KEYS: dict[str, Key] = {
    "version": key(integer(1, 1), "int", "(required)", "1", "format version", required=True),
    "grants": key(
        list_of(record(GRANT_KEYS)),
        "list of grants",
        "[]",
        "[{group: orchd-operators, scopes: [orch:read]}]",
        "who gets which scopes",
    ),
}


@dataclass(frozen=True, slots=True)
class Peer:
    """The process at the other end of a connection, as the kernel names it (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    def groups(self) -> set[int]:
        found = {self.gid}
        try:
            user = pwd.getpwuid(self.uid).pw_name
            found.update(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)
        except KeyError:
            pass
        return found


@dataclass(frozen=True, slots=True)
class Authz:
    grants: tuple[dict[str, Any], ...]
    owner_uid: int  # the daemon's user: all scopes when there is no authz.yaml
    from_file: bool

    def scopes(self, peer: Peer) -> tuple[str, ...]:
        if not self.from_file:
            return SCOPES if peer.uid == self.owner_uid else ()
        found: set[str] = set()
        groups = peer.groups()
        for grant in self.grants:
            if _matches(grant, peer, groups):
                found.update(grant["scopes"])
        return tuple(sorted(found))


def _matches(grant: dict[str, Any], peer: Peer, groups: set[int]) -> bool:
    if "uid" in grant and grant["uid"] != peer.uid:
        return False
    if "gid" in grant and grant["gid"] not in groups:
        return False
    if "user" in grant:
        try:
            if pwd.getpwnam(grant["user"]).pw_uid != peer.uid:
                return False
        except KeyError:
            return False
    if "group" in grant:
        try:
            if grp.getgrnam(grant["group"]).gr_gid not in groups:
                return False
        except KeyError:
            return False
    return any(k in grant for k in _WHO)


def load_authz(policy_dir: Path) -> Authz:
    """The grants of ``policy_dir/authz.yaml``; without the file, the daemon's own user only."""
    path = policy_dir / "authz.yaml"
    if not path.exists():
        return Authz(grants=(), owner_uid=os.getuid(), from_file=False)
    document = read_document(path, AUTHZ_KEYS)
    for grant in document.get("grants", []):
        if not any(k in grant for k in _WHO):
            raise PolicyInvalid(
                file=str(path),
                line=grant["@"].line,
                key=grant["@"].key,
                problem="a grant needs uid, gid, user or group",
            )
    grants = tuple(
        {k: v for k, v in g.items() if not k.startswith("@")} for g in document.get("grants", [])
    )
    return Authz(grants=grants, owner_uid=os.getuid(), from_file=True)
