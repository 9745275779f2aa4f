"""The daemon's configuration: defaults < file < environment < flags (adapters layer).

One YAML file (``/etc/orchd/orchd.yaml``, or ``--config`` / ``ORCHD_CONFIG``) read like a policy
file: composed with the safe loader, every key checked, an unknown key an error naming the file
and line. Each key may also come from the environment as ``ORCHD_<KEY>`` (upper case), checked
the same way; command-line flags win over both. A missing default file is no error (every key has
a default); a file named explicitly must exist. ``CONFIG_KEYS`` is the one list of keys:
``docs/CONFIG.md`` is generated from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from orchd.core.names import check_name
from orchd.errors import ConfigInvalid, InvalidName, PolicyInvalid

from .yamlkeys import (
    REQUIRED,
    At,
    Key,
    absolute_path,
    boolean,
    choice,
    integer,
    key,
    read_document,
)

DEFAULT_PATH = Path("/etc/orchd/orchd.yaml")
LOG_LEVELS = ("debug", "info", "warning", "error")


def _group_name(node: yaml.Node, at: At) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if not isinstance(value, str) or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}\$?", value):
        raise at.error("expected a group name such as orchd-operators")
    return value


def _loopback(node: yaml.Node, at: At) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    found = re.fullmatch(r"(127\.0\.0\.1|\[::1\]|localhost):([0-9]{1,5})", str(value))
    if not isinstance(value, str) or not found or not 0 < int(found[2]) < 65536:
        raise at.error(
            "expected a loopback address and port such as 127.0.0.1:9464 (metrics "
            "are never served beyond this host)"
        )
    return value


NATS_URL_EXPECTED = (
    "expected a NATS server's URL such as nats://127.0.0.1:4222 or tls://nats.site:4222 "
    "(no user or password in it: see nats_password_file)"
)


def nats_url_ok(value: object) -> bool:
    """A NATS server's URL as orchd takes one: nats:// or tls://, a host and a port, nothing
    else (a user or password in it would be shown wherever the URL is)."""
    found = re.fullmatch(
        r"(nats|tls)://([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})", str(value)
    )
    return isinstance(value, str) and found is not None and 0 < int(found[3]) < 65536


def _nats_url(node: yaml.Node, at: At) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if not nats_url_ok(value):
        raise at.error(NATS_URL_EXPECTED)
    return str(value)


def _user(node: yaml.Node, at: At) -> str:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    try:
        return check_name("worker", value)
    except InvalidName as exc:
        raise at.error(f"expected a NATS user's name: {exc.message}") from None


def listen_address(text: str) -> tuple[str, int]:
    """``metrics_listen``'s host and port (checked by the loader)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


CONFIG_KEYS: dict[str, Key] = {
    "version": key(
        integer(1, 1), "int", REQUIRED, "1", "configuration format version", required=True
    ),
    "drain_grace_s": key(
        integer(0, 3600),
        "int",
        "30",
        "60",
        "seconds a draining daemon (SIGTERM) lets running jobs finish before "
        "stopping them; keep it below systemd's TimeoutStopSec",
    ),
    "kill_grace_s": key(
        integer(0, 3600),
        "int",
        "5",
        "10",
        "seconds between SIGTERM and SIGKILL for a run that must stop",
    ),
    "rescan_s": key(
        integer(1, 3600),
        "int",
        "30",
        "10",
        "seconds between spool rescans and schedule checks (inotify and the timer "
        "wake the daemon sooner); slots up to twice this old count as on time",
    ),
    "heartbeat_s": key(
        integer(1, 3600),
        "int",
        "10",
        "10",
        "seconds between lease heartbeats of running jobs (each renews the lease for lease_s)",
    ),
    "lease_s": key(
        integer(2, 86_400),
        "int",
        "30",
        "60",
        "seconds a run's lease lasts without a heartbeat (renewed every heartbeat_s); at least "
        "twice heartbeat_s",
    ),
    "clock_skew_s": key(
        integer(0, 86_400),
        "int",
        "300",
        "120",
        "how far ahead of this site's clock a bundle's creation time or an "
        "imported event's clock may be",
    ),
    "socket": key(
        absolute_path,
        "path",
        "(empty)",
        "/run/orchd/orchd.sock",
        "where the daemon serves its control API; empty: $RUNTIME_DIRECTORY/orchd.sock under "
        "systemd, else STATE_DIR/orchd.sock",
    ),
    "inbox": key(
        absolute_path,
        "path",
        "(empty)",
        "/media/transfer/orchd-inbox",
        "the bundle inbox the daemon imports from (copy a bundle into tmp/, then rename it into "
        "new/); each ends in imported/ or quarantine/ with a .reason; empty: STATE_DIR/inbox",
    ),
    "outbox": key(
        absolute_path,
        "path",
        "(empty)",
        "/media/transfer/orchd-outbox",
        "where bundle export --outbox (and the built-in bundle-export job type) writes bundles "
        "for operators to carry; empty: STATE_DIR/outbox",
    ),
    "socket_group": key(
        _group_name,
        "text",
        "(empty)",
        "orchd-operators",
        "the group the control socket belongs to (mode 0660), so its members can reach the "
        "daemon; empty: the daemon's own group",
    ),
    "bundle_max_mb": key(
        integer(1, 1 << 20),
        "int",
        "4096",
        "512",
        "the largest bundle file imported, verified or accepted through the control socket "
        "(MiB); a larger one is refused before it is read",
    ),
    "metrics_listen": key(
        _loopback,
        "text",
        "(empty)",
        "127.0.0.1:9464",
        "also serve GET /metrics over TCP on this loopback address, for a Prometheus server on "
        "this host; empty: only on the control socket",
    ),
    "log_level": key(
        choice(*LOG_LEVELS),
        "text",
        "info",
        "warning",
        "the least important log lines written (debug, info, warning, error)",
    ),
    "nats_url": key(
        _nats_url,
        "text",
        "(empty)",
        "tls://nats.site:4222",
        "the NATS JetStream server remote job types are dispatched through (docs/ARCHITECTURE.md, "
        "Remote workers); empty: none, and remote jobs wait, throttled (dispatch_unavailable)",
    ),
    "nats_user": key(
        _user,
        "text",
        "orchd",
        "orchd-hq",
        "the daemon's NATS user (orchd workers --authorization prints its permissions and the "
        "workers' for the NATS server's configuration)",
    ),
    "nats_password_file": key(
        absolute_path,
        "path",
        "(empty)",
        "/etc/orchd/nats.password",
        "the file holding that user's password, owned by the daemon's user and readable by it "
        "only (refused otherwise: a symlink, another owner, group or other access); never in "
        "argv, the environment or a log",
    ),
    "nats_nkey_file": key(
        absolute_path,
        "path",
        "(empty)",
        "/etc/orchd/nats.nk",
        "the file holding the daemon's NATS nkey seed (SU...), instead of a user and password; "
        "refused when unsafe as nats_password_file is",
    ),
    "nats_ca_file": key(
        absolute_path,
        "path",
        "(empty)",
        "/etc/orchd/nats-ca.pem",
        "the CA that signed the NATS server's certificate: the connection is TLS from its first "
        "byte (the server's tls block needs handshake_first: true) and the server is verified "
        "against it; empty: the URL's scheme decides (tls:// with the system's CAs)",
    ),
    "remote_lease_s": key(
        integer(1, 600),
        "int",
        "30",
        "10",
        "a remote run's lease: its worker must be heard from (a heartbeat every third of it) "
        "within this, else the run ends interrupted (lease_lost) and its supervisor kills it",
    ),
    "nats_events": key(
        boolean,
        "true or false",
        "false",
        "true",
        "also publish every event this site commits to the NATS stream ORCHD_SITE_EVENTS "
        "(orchd.SITE.events.TYPE), in commit order, at least once, for orchd events follow "
        "--nats or a SIEM (docs/ARCHITECTURE.md, The event stream); needs nats_url",
    ),
    "display_time": key(
        choice("utc", "local"),
        "text",
        "utc",
        "local",
        "how the CLI shows times in its tables and reads a date, today and yesterday: utc, or "
        "local (the zone of TZ, else /etc/localtime), as orchd --local does; --json is UTC always",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    drain_grace_s: int = 30
    kill_grace_s: int = 5
    rescan_s: int = 30
    heartbeat_s: int = 10
    lease_s: int = 30
    clock_skew_s: int = 300
    socket: str = ""
    socket_group: str = ""
    inbox: str = ""
    outbox: str = ""
    bundle_max_mb: int = 4096
    metrics_listen: str = ""
    log_level: str = "info"
    display_time: str = "utc"
    nats_url: str = ""
    nats_user: str = "orchd"
    nats_password_file: str = ""
    nats_nkey_file: str = ""
    nats_ca_file: str = ""
    remote_lease_s: int = 30
    nats_events: bool = False

    @property
    def bundle_max_bytes(self) -> int:
        return self.bundle_max_mb << 20


def env_name(name: str) -> str:
    return f"ORCHD_{name.upper()}"


def load(path: Path, environ: Mapping[str, str], *, explicit: bool) -> Settings:
    """Defaults, overlaid by the file at ``path`` (if it exists, or must when ``explicit``),
    overlaid by ``ORCHD_<KEY>`` variables of ``environ``."""
    values: dict[str, Any] = {}
    if path.exists() or explicit:
        if not path.is_file():
            raise ConfigInvalid(where=str(path), key="(file)", problem="no such file")
        try:
            document = read_document(path, CONFIG_KEYS)
        except PolicyInvalid as exc:
            f = exc.fields
            raise ConfigInvalid(
                where=f"{f['file']}:{f['line']}", key=f["key"] or "(file)", problem=f["problem"]
            ) from None
        values.update({k: v for k, v in document.items() if not k.startswith("@")})
    for name, spec in CONFIG_KEYS.items():
        variable = env_name(name)
        if name != "version" and variable in environ:
            values[name] = _from_environment(variable, environ[variable], spec)
    values.pop("version", None)
    settings = Settings(**values)
    if settings.lease_s < 2 * settings.heartbeat_s:
        raise ConfigInvalid(
            where=str(path),
            key="lease_s",
            problem=f"{settings.lease_s} is less than twice heartbeat_s ({settings.heartbeat_s}): "
            "a lease would lapse between two heartbeats",
        )
    return settings


def _from_environment(variable: str, text: str, spec: Key) -> Any:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
    except yaml.YAMLError:
        node = None
    if node is None or not isinstance(node, yaml.ScalarNode):
        raise ConfigInvalid(where="environment", key=variable, problem=f"{text!r} is not a value")
    try:
        return spec.parse(node, At("environment", 1, variable))
    except PolicyInvalid as exc:
        raise ConfigInvalid(
            where="environment", key=variable, problem=exc.fields["problem"]
        ) from None


def override(settings: Settings, **flags: Any) -> Settings:
    """``settings`` with the flags that were given (not None)."""
    given = {k: v for k, v in flags.items() if v is not None}
    known = {f.name for f in fields(Settings)}
    return replace(settings, **{k: v for k, v in given.items() if k in known})
