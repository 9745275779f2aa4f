"""A worker's spawner of supervisors (adapters layer): one process per worker, started once, with
the supervisor's code already imported, which forks a supervisor process per run on request.
Starting Python and importing the supervisor for every run cost about 150 ms of each remote run
(docs/BENCHMARKS.md, "Remote workers"); a fork of a process that has them costs about 1 ms.

The worker sends, on the control socket it shares with the spawner, one end of a new socket
pair (``socket.send_fds``). The spawner forks: the child starts a session of its own, makes
that socket its stdin and stdout, and runs ``supervisor.main`` exactly as ``python -m
orchd.adapters.supervisor`` would; the spawner closes its copy and goes on. Each run still has a
supervisor process of its own, which fences its job whatever becomes of the worker or of the
spawner. The spawner is single-threaded (forking is safe), reaps its children, and ends when
the worker closes the control socket (or dies).
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import sys

from . import supervisor


def serve(control: socket.socket) -> int:
    while True:
        try:
            _data, fds, _flags, _addr = socket.recv_fds(control, 16, 1)
        except OSError:
            return 0
        if not fds:  # the worker closed its end
            return 0
        _reap()
        try:
            pid = os.fork()
        except OSError:  # EAGAIN (the unit's TasksMax): the worker reads the end of its socket
            os.close(fds[0])
            continue
        if pid == 0:  # the run's supervisor
            control.close()
            os.setsid()  # a signal to the worker's or the spawner's group is not the run's
            os.dup2(fds[0], 0)
            os.dup2(fds[0], 1)
            os.close(fds[0])
            code = 1
            try:
                code = supervisor.main()  # SIGINT handled there: its jobs do not inherit SIG_IGN
            finally:
                os._exit(code)  # the supervisor writes its answers straight to the socket
        os.close(fds[0])


def _reap() -> None:
    """Collect the supervisors that ended (they are this process's children)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker drains; its runs go on
    gc.freeze()  # a collection in a supervisor never walks (and so copies) the spawner's objects
    control = socket.socket(fileno=int(sys.argv[1]))
    try:
        return serve(control)
    finally:
        control.close()


if __name__ == "__main__":
    sys.exit(main())
