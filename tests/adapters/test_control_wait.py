"""How long the control server waits for a call's answer: 60 s (``TIMEOUT_S``) for an ordinary
call, then 503; without a limit for a transfer and for a long action (a ledger verify, which
takes as long as the ledger is big), as the daemon's ``submit`` says."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from orchd.adapters import control, identity
from orchd.adapters.control import server as control_server


@pytest.mark.parametrize(("patient", "status"), [(False, 503), (True, 200)])
def test_only_a_long_action_is_waited_for_past_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patient: bool, status: int
) -> None:
    monkeypatch.setattr(control_server, "TIMEOUT_S", 0.2)

    def submit(call: control.Call) -> bool:
        later = threading.Timer(0.6, call.answer.set_result, [(200, {"ok": True})])
        later.start()
        return patient

    made = control.ControlServer(
        tmp_path / "orchd.sock",
        control.Authz(grants=(), owner_uid=os.getuid(), from_file=False),
        submit,
        transfers=tmp_path / "transfers",
        max_upload=1 << 20,
        identity=identity.new("hq"),
    )
    try:
        peer = control.Peer(pid=os.getpid(), uid=os.getuid(), gid=os.getgid())
        call = control.Call("POST", "/v1/actions/ledger.verify", {}, {}, peer, ("orch:read",))
        answered, _payload = made.handle(call)
    finally:
        made.close()
    assert answered == status
