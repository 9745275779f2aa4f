"""Every command reaches the site it names: ``site.json``, socket discovery bound to the site, a
decoy daemon of another site refused before it acts, no daemon taking another's socket."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, child_env
from test_daemon import Daemon

from orchd.adapters import control, identity
from orchd.adapters.ledger import SqliteLedger
from orchd.adapters.system import OsEntropy, SystemClock
from orchd.errors import WrongSite


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    """Sites hq and decoy on one host, each with a daemon-to-be."""
    (tmp_path / "hq").mkdir()
    (tmp_path / "decoy").mkdir()
    made = (Daemon(tmp_path / "hq", "hq"), Daemon(tmp_path / "decoy", "decoy"))
    yield made
    for d in made:
        d.close()


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[Daemon]:
    made = Daemon(tmp_path)
    yield made
    made.close()


def events(state: Path) -> int:
    ledger = SqliteLedger.open(state / "ledger.db", SystemClock(), OsEntropy())
    try:
        return sum(seq for seq, _ in ledger.heads().values())
    finally:
        ledger.close()


def test_init_writes_a_readable_identity_and_the_daemon_names_its_socket_while_it_runs(
    hq: Daemon,
) -> None:
    path = hq.state / "site.json"
    made = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert made["site_id"] == "hq" and len(made["instance"]) == 32 and "socket" not in made

    hq.start()
    serving = json.loads(path.read_text())
    code, _ = hq.stop()

    assert serving == {**made, "socket": str(hq.state / "orchd.sock")}
    assert code == 0 and json.loads(path.read_text()) == made


def test_a_decoy_at_the_socket_refuses_every_command_before_acting(
    two: tuple[Daemon, Daemon], tmp_path: Path
) -> None:
    hq, decoy = two
    decoy.start()
    decoy_socket = str(decoy.state / "orchd.sock")
    before = events(decoy.state)
    commands = [
        ("jobs", "submit", "echo", "--key", "meant-for-hq"),
        ("jobs", "list"),
        ("status",),
        ("sources", "pause", "nvd", "--reason", "meant for hq"),
        ("audit", "tail"),
        ("bundle", "export", "--out", str(tmp_path / "hq.orchkit")),
    ]
    for command in commands:
        refused = hq.cli("--socket", decoy_socket, *command)
        assert refused.returncode == 42, (command, refused.stderr)
        assert "serves site 'decoy', not 'hq'" in refused.stderr and decoy_socket in refused.stderr
    # a stale site.json naming the decoy's socket: refused the same way, not obeyed
    named = identity.read(hq.state)
    assert named is not None
    identity.write(hq.state, named.with_socket(decoy_socket))
    stale = hq.cli("jobs", "submit", "echo", "--key", "meant-for-hq")
    doctor = json.loads(hq.cli("doctor", "--json").stdout)

    assert stale.returncode == 42 and "'decoy'" in stale.stderr
    [found] = [f for f in doctor if f["check"] == "socket"]
    assert found["level"] == "warn" and "serves site 'decoy', not this one" in found["detail"]
    assert events(decoy.state) == before and not (tmp_path / "hq.orchkit").exists()
    assert decoy.stop()[0] == 0


def raw_post(path: Path, action: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """POST an action with these headers, no client-side checks: what the daemon itself does."""
    body = json.dumps({"job_type": "echo", "key": "wrong"}).encode()
    named = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(path))
        sock.sendall(
            f"POST {control.ACTIONS_PATH}{action} HTTP/1.1\r\nHost: orchd\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n{named}\r\n".encode()
            + body
        )
        with sock.makefile("rb") as reader:
            status, fields = control._head(reader)
            return status, fields, json.loads(reader.read())


def test_a_request_naming_another_site_is_refused_on_the_socket_and_never_reaches_the_loop(
    hq: Daemon,
) -> None:
    hq.start()
    path = hq.state / "orchd.sock"
    before = events(hq.state)
    ours = identity.read(hq.state)
    assert ours is not None

    other_site = raw_post(path, "jobs.submit", {"Orchd-Site": "enclave"})
    other_instance = raw_post(path, "jobs.submit", {"Orchd-Site": "hq", "Orchd-Instance": "0" * 32})
    right = raw_post(path, "status", {"Orchd-Site": "hq", "Orchd-Instance": ours.instance})
    enclave = identity.Identity(site_id="enclave", instance=ours.instance)
    with pytest.raises(WrongSite):  # the client checks the reply's name too
        control.request(path, "POST", control.ACTIONS_PATH + "status", {}, expect=enclave)

    for status, fields, payload in (other_site, other_instance):
        assert status == 409 and payload["code"] == 42 and fields["orchd-site"] == "hq"
    assert (
        "not 'enclave'" in other_site[2]["error"]
        and "a site made anew" in other_instance[2]["error"]
    )
    assert right[0] == 200 and right[1]["orchd-instance"] == ours.instance
    assert events(hq.state) == before and hq.jobs() == []
    assert hq.stop()[0] == 0


def test_two_sites_on_one_host_each_reach_their_own_daemon(two: tuple[Daemon, Daemon]) -> None:
    hq, decoy = two
    hq.start()
    decoy.start()

    for d in (hq, decoy):
        done = d.cli("jobs", "submit", "echo", "--key", f"for-{d.state.parent.name}")
        assert done.returncode == 0, done.stderr
    keys = {d.state.parent.name: [j["key"] for j in d.jobs()] for d in (hq, decoy)}

    assert keys == {"hq": ["for-hq"], "decoy": ["for-decoy"]}
    assert hq.stop()[0] == 0 and decoy.stop()[0] == 0


def test_a_daemon_never_takes_a_socket_that_answers(two: tuple[Daemon, Daemon]) -> None:
    hq, decoy = two
    decoy.start()
    taken = str(decoy.state / "orchd.sock")

    second = hq.cli("--socket", taken, "run")
    still = decoy.cli("jobs", "list")

    assert second.returncode == 43, second.stderr
    assert "a daemon of site 'decoy' already serves" in second.stderr and taken in second.stderr
    assert still.returncode == 0, still.stderr
    assert decoy.stop()[0] == 0


def test_a_socket_left_by_a_dead_daemon_is_replaced_and_named_in_site_json(
    hq: Daemon, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "run" / "hq.sock"
    elsewhere.parent.mkdir()
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(elsewhere))  # bound, never listening: nothing answers there
    dead.close()

    hq.start(ORCHD_SOCKET=str(elsewhere))  # the configuration's socket: (through env)
    named = identity.read(hq.state)
    found = hq.cli("jobs", "submit", "echo", "--key", "via-site-json")  # no --socket given
    listed = [j["key"] for j in hq.jobs()]

    assert named is not None and named.socket == str(elsewhere)
    assert found.returncode == 0, found.stderr
    assert listed == ["via-site-json"]
    assert hq.stop()[0] == 0


def test_an_unreadable_state_dir_is_refused_plainly(hq: Daemon, tmp_path: Path) -> None:
    os.chmod(hq.state, 0o700)
    argv = hq.argv("jobs", "list")
    if os.geteuid() == 0:  # root reads everything: ask as nobody
        if shutil.which("setpriv") is None:
            pytest.skip("no setpriv to drop root")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", *argv]
    env = {**child_env(), "HOME": str(tmp_path)}

    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO, env=env)

    assert done.returncode == 76, done.stderr
    assert f"cannot read the site identity in {hq.state}: permission denied" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_default_socket_is_looked_at_only_for_the_default_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "orchd.sock").touch()
    assert control.find_socket(None, tmp_path) is None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    (tmp_path / "orchd.sock").unlink()
    listener.bind(str(tmp_path / "orchd.sock"))
    try:
        assert control.find_socket(None, tmp_path) == tmp_path / "orchd.sock"
        assert control.find_socket(tmp_path / "other.sock", tmp_path) is None  # --socket alone
        monkeypatch.setattr(control.client, "DEFAULT_STATE_DIR", tmp_path)
        monkeypatch.setattr(control.client, "DEFAULT_SOCKET", tmp_path / "orchd.sock")
        assert control.find_socket(None, tmp_path / "elsewhere") is None
        assert control.find_socket(None, tmp_path) == tmp_path / "orchd.sock"
    finally:
        listener.close()


def test_status_says_whether_a_daemon_serves_this_site_and_where(hq: Daemon) -> None:
    before = json.loads(hq.cli("status", "--json").stdout)["daemon"]
    hq.start()
    during = json.loads(hq.cli("status", "--json").stdout)["daemon"]
    shown = hq.cli("status").stdout
    doctor = json.loads(hq.cli("doctor", "--json").stdout)
    assert hq.stop()[0] == 0

    sock = str(hq.state / "orchd.sock")
    assert before["serving"] is False and "in-process" in before["detail"]
    assert during == {
        "serving": True,
        "socket": sock,
        "detail": f"a daemon serves this site at {sock}",
    }
    assert f"daemon: a daemon serves this site at {sock}" in shown.splitlines()
    [found] = [f for f in doctor if f["check"] == "socket"]
    assert found["level"] == "ok" and found["detail"].startswith(
        f"a daemon serves this site at {sock}"
    )


def test_init_on_a_site_a_daemon_serves_says_so_and_errors_keep_their_own_text(hq: Daemon) -> None:
    alone = hq.cli("jobs", "show", "01ZZZZZZZZ")
    hq.start()
    served = hq.cli("init", "--site-id", "hq")
    relayed = hq.cli("jobs", "show", "01ZZZZZZZZ")
    assert hq.stop()[0] == 0

    sock = hq.state / "orchd.sock"
    assert served.returncode == 46, served.stderr
    assert f"already exists at {hq.state}, and a daemon serves it at {sock}" in served.stderr
    assert relayed.returncode == alone.returncode == 34
    assert relayed.stderr == alone.stderr  # no "the daemon refused" in front: the same words


def test_the_configured_socket_serves_and_site_json_leads_clients_to_it(
    hq: Daemon, tmp_path: Path
) -> None:
    configured = tmp_path / "elsewhere" / "hq.sock"
    configured.parent.mkdir()
    config = tmp_path / "orchd.yaml"
    config.write_text(f"version: 1\nsocket: {configured}\n")

    hq.start(ORCHD_CONFIG=str(config))  # the daemon alone reads the configuration
    named = identity.read(hq.state)
    done = hq.cli("jobs", "submit", "echo", "--key", "through-config")  # no --config, no --socket
    log = hq.stop()[1]

    assert named is not None and named.socket == str(configured)
    assert done.returncode == 0, done.stderr
    assert '"action": "jobs.submit"' in log  # it went through the configured socket
