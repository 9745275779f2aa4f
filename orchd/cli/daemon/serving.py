"""The start and the end of serving (entry layer): the control socket and the metrics
listener, signal handlers, the wake-ups, ``site.json`` naming the socket, the daemon's
``daemon.started``/``daemon.stopped`` events and systemd's READY."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from orchd import __version__
from orchd.adapters import config, control, identity
from orchd.core import drafts
from orchd.errors import ConfigInvalid, OrchdError

from ..context import ensure_identity
from .env import TRANSFER_DIR

if TYPE_CHECKING:
    from .root import Daemon


@contextmanager
def serving(daemon: Daemon) -> Iterator[None]:
    """Everything around the loop: started in this order once the loop may begin, stopped
    (in the reverse order) once it has ended."""
    state_dir = daemon.site.config.state_dir
    named = ensure_identity(state_dir, daemon.site.ledger.site_id)
    address = named.with_socket(str(daemon.socket_path))
    server = control.ControlServer(
        daemon.socket_path,
        control.load_authz(daemon.site.config.policy_dir),
        daemon.calls.enqueue,
        identity=address,
        transfers=state_dir / TRANSFER_DIR,
        max_upload=daemon.settings.bundle_max_bytes,
        group=daemon.settings.socket_group,
    )
    listener = _listener(daemon, server)
    _check_folder(daemon)
    handlers = {
        sig: signal.signal(sig, daemon.on_signal)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    daemon.wake.start()
    server.start()
    if listener is not None:
        listener.start()
        daemon.log("info", "serving metrics", address=daemon.settings.metrics_listen)
    _started(daemon, address)
    try:
        yield
    finally:
        if listener is not None:
            listener.close()
        server.close()
        if daemon.dispatch is not None:
            daemon.dispatch.close()  # offers and answers under way are flushed
        daemon.lanes.close()  # the calls under way beside the loop end first
        _unnamed(daemon, named)
        daemon.wake.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        daemon.audit(drafts.daemon_stopped)
        daemon.log("info", "stopped")


def _listener(daemon: Daemon, server: control.ControlServer) -> control.MetricsListener | None:
    if not daemon.settings.metrics_listen:
        return None
    try:
        address = config.listen_address(daemon.settings.metrics_listen)
        return control.MetricsListener(address, server)
    except OSError as exc:
        server.close()
        raise ConfigInvalid(
            where="metrics_listen",
            key=daemon.settings.metrics_listen,
            problem=exc.strerror or str(exc),
        ) from None


def _check_folder(daemon: Daemon) -> None:
    folder = daemon.socket_path.parent
    if not folder.stat().st_mode & 0o011:
        daemon.log(
            "warning",
            "only the daemon's user can traverse the socket's directory, so "
            "no operator can reach the socket",
            directory=str(folder),
        )


def _started(daemon: Daemon, address: identity.Identity) -> None:
    site_id = daemon.site.ledger.site_id
    daemon.audit(drafts.daemon_started, version=__version__)
    identity.write(daemon.site.config.state_dir, address)  # clients find the socket from now
    daemon.notifier.ready(f"ready: site {site_id} on {daemon.socket_path}")
    daemon.log("info", "ready", site=site_id, pid=os.getpid(), socket=str(daemon.socket_path))


def _unnamed(daemon: Daemon, named: identity.Identity) -> None:
    """At exit: ``site.json`` names no socket any more (unless another instance's file)."""
    state_dir = daemon.site.config.state_dir
    try:
        if identity.read(state_dir) == named.with_socket(str(daemon.socket_path)):
            identity.write(state_dir, named)
    except OrchdError as exc:
        daemon.log("error", "could not take the socket out of site.json", error=exc.message)
