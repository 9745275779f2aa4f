"""The systemd unit, its sysusers.d and tmpfiles.d files, and the daemon run the way the unit runs
it. These machines do not run systemd as PID 1, so the tests read the files, check them with
systemd-analyze (tools/check_systemd.sh) and play systemd's part: setpriv for the privileges, a
mount and network namespace for the file system, and seccomp filters built with libseccomp from
the unit's own values. The unit's header lists which option each test exercises.

The READY/STOPPING/WATCHDOG protocol itself is tested in tests/faults/test_daemon.py; here it is
the installed ``orchd`` entry point, without privileges and in the sandbox, that must speak it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import itertools
import json
import mmap
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner

from orchd import errors
from orchd.adapters import config, control, spool
from orchd.cli import bundle, cli, work
from orchd.cli.context import Config

if TYPE_CHECKING:
    from tests.daemon_harness import DaemonProcess

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "orchd.service"
SYSUSERS = REPO / "systemd" / "orchd.sysusers"
TMPFILES = REPO / "systemd" / "orchd.tmpfiles"
CHECK = REPO / "tools" / "check_systemd.sh"
ORCHD = Path(sys.executable).with_name("orchd")  # the installed entry point, as ExecStart runs it
SERVICE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"  # systemd's PATH for services
POLICY = """
version: 1
sources:
  nvd: {description: NVD}
job_types:
  echo:
    argv: [/bin/sh, -c, "echo hello {n}"]
    params: {n: "0"}
"""
OPERATOR = "version: 1\ngrants:\n  - uid: 0\n    scopes: [orch:read, orch:operate]\n"

Unit = dict[str, list[str]]


def needs(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian: systemd, util-linux)")


# --- reading the files ------------------------------------------------------------------------


def unit_file() -> Unit:
    """``Section.Key`` → its values in order (systemd allows a key more than once)."""
    found: Unit = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), "a continued line: teach unit_file to join it"
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return found


def one(unit: Unit, key: str) -> str:
    values = unit.get(f"Service.{key}", [])
    assert len(values) == 1, (key, values)
    return values[0]


def seconds(span: str) -> float:
    """A systemd time span of one number and unit, such as ``60s`` or ``5min``."""
    number = span.rstrip("abcdefghijklmnopqrstuvwxyz")
    return float(number) * {"": 1, "s": 1, "sec": 1, "min": 60, "h": 3600}[span[len(number) :]]


def environment(unit: Unit) -> dict[str, str]:
    words = (word for value in unit["Service.Environment"] for word in value.split())
    return dict(word.split("=", 1) for word in words)


def directories(unit: Unit) -> dict[str, Path]:
    """The unit's *Directory= paths, by the variable systemd names each in."""
    return {
        "STATE_DIRECTORY": Path("/var/lib") / one(unit, "StateDirectory"),
        "RUNTIME_DIRECTORY": Path("/run") / one(unit, "RuntimeDirectory"),
        "LOGS_DIRECTORY": Path("/var/log") / one(unit, "LogsDirectory"),
        "CONFIGURATION_DIRECTORY": Path("/etc") / one(unit, "ConfigurationDirectory"),
    }


def lines_of(path: Path) -> list[list[str]]:
    """The fields of each line of a sysusers.d or tmpfiles.d file, but comments."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


def tmpfiles() -> dict[str, list[str]]:
    """Path → the other fields of its line (type, mode, user, group, age, argument)."""
    return {fields[1]: [fields[0], *fields[2:]] for fields in lines_of(TMPFILES)}


# --- what the files say -----------------------------------------------------------------------


def test_the_unit_runs_orchd_as_a_notify_service_systemd_watches_and_restarts() -> None:
    unit = unit_file()

    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "ExecStart").split() == ["/opt/orchd/bin/orchd", "run"]
    assert one(unit, "ExecReload").split() == ["/bin/kill", "-HUP", "$MAINPID"]
    assert one(unit, "Restart") == "on-failure"
    # bundle imports run on the loop and stop its pings while they last (the unit says more)
    assert seconds(one(unit, "WatchdogSec")) >= 180
    assert one(unit, "User") == one(unit, "Group") == "orchd"


def test_systemd_waits_out_the_daemons_drain_before_it_kills() -> None:
    unit = unit_file()
    defaults = config.Settings()

    assert seconds(one(unit, "TimeoutStopSec")) > defaults.drain_grace_s + defaults.kill_grace_s
    assert one(unit, "KillMode") == "mixed"  # SIGTERM to orchd alone: its jobs get the grace


def test_no_restart_for_the_errors_a_restart_cannot_mend() -> None:
    codes = {int(code) for code in one(unit_file(), "RestartPreventExitStatus").split()}

    assert codes == {
        click.UsageError.exit_code,
        errors.PolicyInvalid.exit_code,
        errors.PolicyMissing.exit_code,
        errors.ConfigInvalid.exit_code,
        errors.NotInitialized.exit_code,
        errors.SchemaTooNew.exit_code,
        errors.LedgerCorrupt.exit_code,
        errors.ChainBroken.exit_code,
        errors.LedgerBehind.exit_code,
        errors.KeyFileUnsafe.exit_code,
    }


def test_the_unit_sysusers_and_tmpfiles_name_the_same_user_and_places() -> None:
    unit = unit_file()
    env, dirs, entries = environment(unit), directories(unit), tmpfiles()
    state, logs = dirs["STATE_DIRECTORY"], dirs["LOGS_DIRECTORY"]
    [[kind, name, uid, _gecos, home, shell]] = lines_of(SYSUSERS)

    assert (kind, name, uid) == ("u", one(unit, "User"), "-")
    assert Path(home) == state and shell.endswith("/nologin")
    assert Path(env["ORCHD_STATE_DIR"]) == state
    assert Path(env["ORCHD_POLICY_DIR"]).parent == config.DEFAULT_PATH.parent
    assert config.DEFAULT_PATH.parent == dirs["CONFIGURATION_DIRECTORY"]
    assert "ORCHD_CONFIG" not in env  # named, the file would become mandatory
    assert "ORCHD_SOCKET" not in env  # $RUNTIME_DIRECTORY/orchd.sock unless orchd.yaml says
    assert entries[str(state)] == ["d", one(unit, "StateDirectoryMode"), name, name, "-"]
    assert entries[str(logs)] == ["d", one(unit, "LogsDirectoryMode"), name, name, "-"]
    # the runner writes STATE_DIR/logs/runs/RUN.log: the link puts it in LogsDirectory=
    assert entries[str(state / Path(work.LOG_DIR).parts[0])] == ["L", "-", "-", "-", "-", str(logs)]
    assert {Path(path).parent for path in entries} <= {
        state.parent,
        logs.parent,
        *map(Path, entries),
    }


def test_tmpfiles_makes_the_directories_the_daemon_makes_and_with_their_modes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ORCHD_OUTBOX", raising=False)
    state, made = tmp_path / "site", tmp_path / "made"
    old = os.umask(0)
    try:  # what orchd makes itself, with the modes it asks for
        done = CliRunner().invoke(cli, ["--state-dir", str(state), "init", "--site-id", "hq"])
        spool.ensure(made / "spool")
        spool.ensure(made / "inbox", spool.INBOX_SUBDIRS)
        bundle.outbox_file(Config(state_dir=made, policy_dir=made), "peer")
    finally:
        os.umask(old)
    assert done.exit_code == 0, done.output
    root = directories(unit_file())["STATE_DIRECTORY"]
    made_modes = {str(root): state.stat().st_mode & 0o7777}
    for path in made.rglob("*"):
        made_modes[f"{root}/{path.relative_to(made)}"] = path.stat().st_mode & 0o7777
    # spool/ and inbox/ are made as parents, with no mode of orchd's: the group must traverse
    parents = {f"{root}/spool", f"{root}/inbox"}

    listed = {p: int(f[1], 8) for p, f in tmpfiles().items() if f[0] == "d"}
    listed = {p: mode for p, mode in listed.items() if p.startswith(str(root))}
    assert listed.keys() == made_modes.keys()
    assert all(listed[p] == made_modes[p] for p in listed.keys() - parents), (listed, made_modes)
    assert all(listed[p] & 0o050 == 0o050 for p in parents)
    assert {f"{root}/spool/{sub}" for sub in spool.SUBDIRS} <= listed.keys()


def scratch_root(path: Path) -> tuple[Path, int, int]:
    """An empty root with the user of orchd.sysusers and the tree of orchd.tmpfiles, as
    systemd-sysusers and systemd-tmpfiles make them; and that user's uid and gid."""
    needs("systemd-sysusers", "systemd-tmpfiles")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles gives the directories to orchd's uid: needs root")
    (path / "etc").mkdir(parents=True)
    for command in (
        ["systemd-sysusers", f"--root={path}", str(SYSUSERS)],
        ["systemd-tmpfiles", f"--root={path}", "--create", str(TMPFILES)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    [user] = [line.split(":") for line in (path / "etc" / "passwd").read_text().splitlines()]
    return path, int(user[2]), int(user[3])


def test_sysusers_and_tmpfiles_lay_out_a_root_for_the_orchd_user(tmp_path: Path) -> None:
    root, uid, gid = scratch_root(tmp_path / "root")

    for path, (kind, mode, *rest) in tmpfiles().items():
        made = root / path.lstrip("/")
        if kind == "L":
            assert os.readlink(made) == rest[-1]
            continue
        info = made.stat()
        assert (f"{info.st_mode & 0o7777:04o}", info.st_uid, info.st_gid) == (mode, uid, gid)
    assert 0 < uid < 1000  # a system user


# --- systemd-analyze --------------------------------------------------------------------------


def check_systemd(*unit: Path) -> subprocess.CompletedProcess[str]:
    needs("systemd-analyze")
    argv = ["sh", str(CHECK), str(ORCHD), *map(str, unit)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def test_check_systemd_passes_the_unit() -> None:
    done = check_systemd()

    assert done.returncode == 0, done.stdout + done.stderr
    [said] = [line for line in done.stdout.splitlines() if "exposure" in line]
    score = float(said.split("exposure ")[1].split()[0])
    print(f"systemd-analyze security --offline=yes: {score}")
    assert score <= 2.0
    assert all(line.startswith("check_systemd: ok: ") for line in done.stdout.splitlines())


def test_check_systemd_fails_a_misspelt_or_a_weakened_unit(tmp_path: Path) -> None:
    text = UNIT.read_text()
    misspelt, weak = tmp_path / "misspelt" / "orchd.service", tmp_path / "weak" / "orchd.service"
    for path in (misspelt, weak):
        path.parent.mkdir()
    misspelt.write_text(text.replace("\nProtectSystem=strict\n", "\nProtectSytem=strict\n"))
    before, _, after = text.partition("# --- the sandbox")
    weak.write_text(before + after[after.index("\n[Install]") :])

    typo, exposed = check_systemd(misspelt), check_systemd(weak)

    assert typo.returncode == 1 and "ProtectSytem" in typo.stderr, typo.stderr
    assert f"{misspelt}:" in typo.stderr  # the user's file, not the checker's copy
    assert exposed.returncode == 1 and "is above 2.0" in exposed.stderr, exposed.stderr


# --- the daemon, started as systemd starts it -------------------------------------------------


def started(
    argv: list[str], env: dict[str, str], tmp_path: Path, notify_as: str = ""
) -> DaemonProcess:
    """The daemon as systemd starts it, from ``/``, once it has sent READY=1 to
    ``tmp_path/notify/notify`` (known to it as ``notify_as`` if given); a ``with`` block kills
    it at the end if it still runs."""
    from tests import daemon_harness  # not at the top: the sandbox runs this file without tests/

    notify = tmp_path / "notify" / "notify"
    log_path = tmp_path / "daemon.log"
    return daemon_harness.launch(
        argv, env=env, cwd=Path("/"), log_path=log_path, notify=notify, notify_as=notify_as
    )


def client_env() -> dict[str, str]:
    """This environment without ORCHD_* variables: only the flags choose the site."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCHD_")}


def orchd(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(ORCHD), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, env=client_env())


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def write_policy(folder: Path, authz: str = "") -> Path:
    folder.mkdir(parents=True)
    (folder / "site.yaml").write_text(POLICY)
    if authz:
        (folder / "authz.yaml").write_text(authz)
    return folder


def privileges(pid: int) -> dict[str, str]:
    fields = (line.split(":\t") for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: v.strip() for k, v in fields if k in ("NoNewPrivs", "CapEff", "CapBnd", "CapAmb")}


@pytest.fixture
def installed() -> Path:
    if not ORCHD.is_file():
        pytest.skip(f"no orchd entry point beside {sys.executable}")
    return ORCHD


# --- the daemon without privileges ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("installed")
def test_the_daemon_without_privileges_is_ready_pings_answers_and_stops(tmp_path: Path) -> None:
    needs("setpriv")
    policy = write_policy(tmp_path / "policy")
    where = ["--state-dir", str(tmp_path / "site"), "--policy-dir", str(policy)]
    assert orchd(*where, "init", "--site-id", "hq").returncode == 0
    root = os.geteuid() == 0  # only root may empty its bounding set
    drop = ["--no-new-privs", "--inh-caps=-all", *(["--bounding-set=-all"] if root else [])]
    env = {**client_env(), "WATCHDOG_USEC": "2000000", "ORCHD_LOG_LEVEL": "debug"}
    argv = ["setpriv", *drop, "--", str(ORCHD), *where, "run", "--rescan", "1", "--grace", "2"]

    with started(argv, env, tmp_path) as daemon:
        held = privileges(daemon.proc.pid)
        pings = daemon.watchdog_pings(3.0)
        status = orchd(*where, "status", "--json")
        daemon.send(signal.SIGHUP)  # what ExecReload= sends
        wait_until(
            lambda: "policy reloaded" in [line["msg"] for line in daemon.log_lines()],
            "the policy reloaded",
        )
        code = daemon.stop()

    none = "0" * 16
    assert held["NoNewPrivs"] == "1" and held["CapEff"] == held["CapAmb"] == none, held
    assert held["CapBnd"] == none or not root, held
    gaps = [later - earlier for earlier, later in itertools.pairwise(pings)]
    assert len(pings) >= 2 and max(gaps) < 2.0, pings  # each within WATCHDOG_USEC
    assert status.returncode == 0 and json.loads(status.stdout), status.stderr
    assert "status" in [line.get("action") for line in daemon.log_lines()]  # through its socket
    assert code == 0, daemon.log_path.read_text()


# --- the daemon in the unit's sandbox ---------------------------------------------------------

# Run by `unshare --mount --net` as root: builds the service's view of the file system, then
# becomes the service's user without privileges. Arguments: ROOT (laid out by orchd.sysusers and
# orchd.tmpfiles), NOTIFY_DIR, ETC (holding orchd/policies), UID, GID, KEEP (directories under
# /root, /home, /tmp or /var/tmp that the test's own Python and orchd live in, space-separated),
# the command.
SANDBOX_SH = r"""
set -eu
root=$1 notify=$2 etc=$3 uid=$4 gid=$5 keep=$6
shift 6
mount --make-rprivate /
# ProtectProc=invisible, ProcSubset=pid (which hides /proc/sys too: ProtectKernelTunables=)
mount -t proc -o nosuid,nodev,noexec,hidepid=invisible,subset=pid proc /proc
# RuntimeDirectory=; systemd's notify socket as /run/systemd/notify
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir /run/orchd /run/systemd /run/dev /run/keep
mount --bind "$root/run/orchd" /run/orchd
mount --bind "$notify" /run/systemd
# StateDirectory=, LogsDirectory=: the only entries of /var/lib and /var/log
for dir in /var/lib /var/log; do
    mount -t tmpfs -o mode=0755 tmpfs "$dir"
    mkdir "$dir/orchd"
    mount --bind "$root$dir/orchd" "$dir/orchd"
done
# ConfigurationDirectory=: /etc/orchd
mount -t overlay -o "lowerdir=$etc:/etc" overlay /etc
# PrivateDevices=
mount -t tmpfs -o mode=0755,nosuid tmpfs /run/dev
for node in null zero full random urandom; do
    touch "/run/dev/$node"
    mount --bind "/dev/$node" "/run/dev/$node"
done
mkdir /run/dev/shm
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /run/dev/shm
ln -s /proc/self/fd /run/dev/fd
mount --move /run/dev /dev
# ProtectHome=yes, but for the test's own Python and orchd if they live there
n=0
for dir in $keep; do
    n=$((n + 1))
    mkdir "/run/keep/$n"
    mount --bind "$dir" "/run/keep/$n"
done
for home in /home /root; do
    [ ! -d "$home" ] || mount -t tmpfs -o mode=0000 tmpfs "$home"
done
# PrivateTmp=
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
n=0
for dir in $keep; do
    n=$((n + 1))
    case $dir in
        /home/* | /root/*) chmod 0755 "$(echo "$dir" | cut -d/ -f1-2)" ;;
    esac
    mkdir -p "$dir"
    mount --move "/run/keep/$n" "$dir"
done
# ProtectSystem=strict (with ProtectControlGroups= and ProtectKernelTunables=: /sys read-only)
findmnt -rn -o TARGET | while read -r target; do
    case $target in
        /proc | /proc/* | /dev/shm | /tmp | /var/tmp) ;;
        /run/orchd | /var/lib/orchd | /var/log/orchd) ;;
        *) mount -o remount,bind,ro "$target" 2>/dev/null || true ;;
    esac
done
for dir in / /etc /usr /var /var/lib /var/log /run /run/systemd /dev /sys /sys/fs/cgroup /root; do
    if [ -w "$dir" ]; then echo "sandbox: $dir is writable" >&2; exit 1; fi
done
echo "sandbox: read-only but for /var/lib/orchd /var/log/orchd /run/orchd /tmp /var/tmp" >&2
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs --bounding-set=-all \
    --inh-caps=-all -- "$@"
"""

# What SANDBOX_SH needs of the kernel and of the rights it runs with.
PROBE_SH = """
set -eu
mount -t tmpfs tmpfs /tmp
mkdir /tmp/lower /tmp/etc
mount -t overlay -o lowerdir=/tmp/lower:/etc overlay /tmp/etc
mount -t proc -o hidepid=invisible,subset=pid proc /proc
mount -o remount,bind,ro /tmp
"""

# from seccomp.h and the kernel's headers
ALLOW = 0x7FFF0000
CMP_EQ, CMP_GE, CMP_MASKED_EQ = 4, 5, 7
AF_MAX = 46  # no address family at or above it
SHM_EXEC = 0o100000
CLONE_NEWUSER = 0x10000000
# CLONE_NEWNS, CLONE_NEWCGROUP, _NEWUTS, _NEWIPC, _NEWUSER, _NEWPID, _NEWNET
NAMESPACE_FLAGS = (0x20000, 0x2000000, 0x4000000, 0x8000000, CLONE_NEWUSER, 0x20000000, 0x40000000)
Rule = tuple[str, int, list[tuple[int, int, int, int]]]  # syscall, action, argument checks


def refuse(code: int) -> int:
    return 0x00050000 | code  # SCMP_ACT_ERRNO(code)


def syscall_groups() -> dict[str, list[str]]:
    """systemd's syscall groups: ``@name`` → its members, groups among them."""
    argv = ["systemd-analyze", "syscall-filter"]
    listing = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    groups: dict[str, list[str]] = {}
    members: list[str] = []
    for line in listing.splitlines():
        if line.startswith("@"):
            members = groups.setdefault(line.strip(), [])
        elif line.startswith(" ") and not line.strip().startswith("#"):
            members.append(line.strip())
    return groups


def allowed_syscalls(filters: list[str]) -> set[str]:
    """What the unit's SystemCallFilter= lines allow, in their order (the first: an allow list)."""
    groups = syscall_groups()

    def expand(names: list[str]) -> set[str]:
        found: set[str] = set()
        for name in names:
            found |= expand(groups[name]) if name.startswith("@") else {name}
        return found

    allowed: set[str] = set()
    for n, value in enumerate(filters):
        assert n or not value.startswith("~"), "the first SystemCallFilter= must allow"
        names = expand(value.removeprefix("~").split())
        allowed = allowed - names if value.startswith("~") else allowed | names
    return allowed


def family_rules(unit: Unit) -> list[Rule]:
    """RestrictAddressFamilies=: socket() of any other family fails with EAFNOSUPPORT."""
    families = {getattr(socket, name) for name in one(unit, "RestrictAddressFamilies").split()}
    others = [family for family in range(AF_MAX) if family not in families]
    no = refuse(errno.EAFNOSUPPORT)
    rules: list[Rule] = [("socket", no, [(0, CMP_EQ, family, 0)]) for family in others]
    return [*rules, ("socket", no, [(0, CMP_GE, AF_MAX, 0)])]


def memory_rules() -> list[Rule]:
    """MemoryDenyWriteExecute=, as systemd 252 filters it."""
    wx, x, no = mmap.PROT_WRITE | mmap.PROT_EXEC, mmap.PROT_EXEC, refuse(errno.EPERM)
    return [
        ("mmap", no, [(2, CMP_MASKED_EQ, wx, wx)]),
        ("mprotect", no, [(2, CMP_MASKED_EQ, x, x)]),
        ("pkey_mprotect", no, [(2, CMP_MASKED_EQ, x, x)]),
        ("shmat", no, [(2, CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)]),
    ]


def namespace_rules() -> list[Rule]:
    """RestrictNamespaces=yes, as systemd 252 filters it (clone3 fails so libc uses clone)."""
    no = refuse(errno.EPERM)
    rules: list[Rule] = [("setns", no, []), ("clone3", refuse(errno.ENOSYS), [])]
    for flag, call in itertools.product(NAMESPACE_FLAGS, ("unshare", "clone")):
        rules.append((call, no, [(0, CMP_MASKED_EQ, flag, flag)]))
    return rules


def seccomp_filters(unit: Unit) -> list[tuple[int, list[Rule]]]:
    """The unit's seccomp filters as (default action, rules), loaded in this order."""
    assert one(unit, "SystemCallArchitectures") == "native"  # libseccomp's default
    filters = [(ALLOW, family_rules(unit))]
    if one(unit, "MemoryDenyWriteExecute") == "yes":
        filters.append((ALLOW, memory_rules()))
    if one(unit, "RestrictNamespaces") == "yes":
        filters.append((ALLOW, namespace_rules()))
    denied = refuse(getattr(errno, one(unit, "SystemCallErrorNumber")))
    allowed = sorted(allowed_syscalls(unit["Service.SystemCallFilter"]))
    return [*filters, (denied, [(name, ALLOW, []) for name in allowed])]  # last: no seccomp()


class _Compare(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = (
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    )


def load_filter(lib: ctypes.CDLL, default: int, rules: list[Rule]) -> None:
    lib.seccomp_init.restype = ctypes.c_void_p
    ctx = ctypes.c_void_p(lib.seccomp_init(ctypes.c_uint32(default)))
    assert ctx.value, "seccomp_init failed"
    try:
        for name, action, checks in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number == -1:
                continue  # unknown to libseccomp: systemd skips it too
            array = (_Compare * len(checks))(*(_Compare(*check) for check in checks))
            added = lib.seccomp_rule_add_array(
                ctx, ctypes.c_uint32(action), number, len(checks), array
            )
            if added < 0 and number >= 0:  # below 0: a call this architecture does not have
                raise OSError(-added, f"seccomp rule for {name}")
        loaded = lib.seccomp_load(ctx)
        if loaded < 0:
            raise OSError(-loaded, "seccomp_load")
    finally:
        lib.seccomp_release(ctx)


def refused_now() -> list[str]:
    """Which of four things the filters should refuse this process does refuse."""
    libc = ctypes.CDLL(None, use_errno=True)

    def namespace() -> None:  # a user namespace: anyone may make one where nothing refuses
        if libc.unshare(CLONE_NEWUSER) != 0:
            raise OSError(ctypes.get_errno(), "unshare")

    def memory() -> None:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC).close()

    attempts: dict[str, Callable[[], object]] = {
        "AF_INET sockets": lambda: socket.socket(socket.AF_INET).close(),
        "writable executable memory": memory,
        "setpriority": lambda: os.setpriority(os.PRIO_PROCESS, 0, 1),
        "new namespaces": namespace,
    }
    refused = []
    for what, attempt in attempts.items():
        try:
            attempt()
        except OSError:
            refused.append(what)
    return refused


def exec_filtered(spec: dict[str, Any], argv: list[str]) -> None:
    """The sandbox's last step before orchd: the unit's UMask= and seccomp filters."""
    os.umask(spec["umask"])
    lib = ctypes.CDLL(spec["libseccomp"], use_errno=True)
    for default, rules in spec["filters"]:
        load_filter(lib, default, rules)
    print(f"sandbox: refused {', '.join(refused_now())}", file=sys.stderr, flush=True)
    os.execv(argv[0], argv)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """A scratch root as the service's files make it, seen from outside the sandbox."""

    root: Path
    uid: int
    gid: int
    state: Path
    logs: Path
    runtime: Path
    etc: Path


def lay_out(tmp_path: Path, unit: Unit) -> Layout:
    """orchd.sysusers and orchd.tmpfiles applied to a scratch root, RuntimeDirectory= made, the
    test's policy in /etc/orchd/policies, and a site made by ``orchd init`` and then given to
    orchd's user (as StateDirectory= does to a directory owned by another)."""
    root, uid, gid = scratch_root(tmp_path / "root")
    dirs = directories(unit)
    state, logs, runtime = (
        root / str(dirs[f"{kind}_DIRECTORY"]).lstrip("/") for kind in ("STATE", "LOGS", "RUNTIME")
    )
    runtime.mkdir(parents=True)
    os.chown(runtime, uid, gid)
    runtime.chmod(int(one(unit, "RuntimeDirectoryMode"), 8))
    etc = tmp_path / "etc"
    policies = Path(environment(unit)["ORCHD_POLICY_DIR"]).relative_to("/etc")
    write_policy(etc / policies, OPERATOR)  # the test calls through the socket as root
    assert orchd("--state-dir", str(state), "init", "--site-id", "hq").returncode == 0
    for folder, subdirs, names in os.walk(state):
        for name in [*subdirs, *names]:
            os.chown(Path(folder) / name, uid, gid, follow_symlinks=False)
    return Layout(root=root, uid=uid, gid=gid, state=state, logs=logs, runtime=runtime, etc=etc)


def kept_from_home() -> str:
    """The directories under /root, /home or the temporary dirs (which the sandbox hides) that
    this Python and orchd need (space-separated): a CI clone may live in /tmp."""
    homes = (Path("/root"), Path("/home"), Path("/tmp"), Path("/var/tmp"))
    mine = {Path(sys.base_prefix).resolve(), REPO, ORCHD.parent.resolve()}
    kept = {p for p in mine if any(p.is_relative_to(home) for home in homes)}
    kept = {p for p in kept if not any(p != q and p.is_relative_to(q) for q in kept)}
    if any(" " in str(path) for path in kept):
        pytest.skip(f"the sandbox script cannot keep a path with a space: {kept}")
    return " ".join(sorted(map(str, kept)))


def sandboxed(layout: Layout, unit: Unit, library: str, tmp_path: Path) -> list[str]:
    """The command that runs ``orchd run`` in the unit's sandbox."""
    spec = {
        "umask": int(one(unit, "UMask"), 8),
        "libseccomp": library,
        "filters": seccomp_filters(unit),
    }
    script = [str(layout.root), str(tmp_path / "notify"), str(layout.etc), str(layout.uid)]
    script += [str(layout.gid), kept_from_home()]
    last_step = [sys.executable, __file__, json.dumps(spec)]
    orchd_run = [str(ORCHD), "run", "--rescan", "1", "--grace", "2"]
    unshare = ["unshare", "--mount", "--net", "--", "sh", "-c", SANDBOX_SH, "sandbox"]
    return [*unshare, *script, *last_step, *orchd_run]


def service_env(unit: Unit) -> dict[str, str]:
    """The environment systemd gives the service: its own, Environment=, the *_DIRECTORY."""
    dirs = {name: str(path) for name, path in directories(unit).items()}
    user = {"USER": one(unit, "User"), "LOGNAME": one(unit, "User")}
    given = {"PATH": SERVICE_PATH, "LANG": "C.UTF-8", "HOME": dirs["STATE_DIRECTORY"], **user}
    return {**given, **environment(unit), **dirs, "ORCHD_LOG_LEVEL": "debug"}


@pytest.mark.slow
@pytest.mark.usefixtures("installed")
def test_the_daemon_in_the_units_sandbox_runs_a_job_and_stops(tmp_path: Path) -> None:
    needs("unshare", "setpriv", "findmnt", "systemd-analyze")
    library = ctypes.util.find_library("seccomp")
    if library is None:
        pytest.skip("libseccomp is not installed (Debian: libseccomp2)")
    unit = unit_file()
    layout = lay_out(tmp_path, unit)
    argv = ["unshare", "--mount", "--net", "sh", "-c", PROBE_SH]
    probe = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"the mounts of the sandbox are not permitted here: {probe.stderr.strip()}")
    env = service_env(unit)
    policies = layout.etc / Path(env["ORCHD_POLICY_DIR"]).relative_to("/etc")
    where = ["--socket", str(layout.runtime / control.SOCKET_NAME)]
    where += ["--state-dir", str(layout.state), "--policy-dir", str(policies)]

    def states() -> list[str]:
        listed = orchd(*where, "jobs", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        return [job["state"] for job in json.loads(listed.stdout)]

    argv = sandboxed(layout, unit, library, tmp_path)
    with started(argv, env, tmp_path, notify_as="/run/systemd/notify") as daemon:
        submitted = orchd(*where, "jobs", "submit", "echo", "--param", "n=7", "--key", "boxed")
        wait_until(lambda: states() == ["succeeded"], "the job to succeed")
        code = daemon.stop()

    said = daemon.log_path.read_text()
    assert submitted.returncode == 0, submitted.stderr
    assert code == 0, said
    assert "sandbox: read-only but for /var/lib/orchd" in said
    refused = "AF_INET sockets, writable executable memory, setpriority, new namespaces"
    assert f"sandbox: refused {refused}\n" in said
    assert [line for line in daemon.log_lines() if line["level"] == "error"] == []
    assert "jobs.submit" in [line.get("action") for line in daemon.log_lines()]
    [run_log] = (layout.logs / "runs").glob("*.log")  # through the link STATE_DIR/logs
    assert run_log.read_text() == "hello 7\n"
    mode = 0o640 & ~int(one(unit, "UMask"), 8)
    assert (run_log.stat().st_uid, run_log.stat().st_mode & 0o777) == (layout.uid, mode)
    assert (layout.state / "logs").is_symlink()


if __name__ == "__main__":  # pragma: no cover - SANDBOX_SH runs this file as its last step
    exec_filtered(json.loads(sys.argv[1]), sys.argv[2:])
