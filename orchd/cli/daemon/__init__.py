"""The daemon (``orchd run``) as small parts (entry layer), each with a ``tick(now_ms)`` that does
its due work for the monotonic time ``now_ms`` (huey's ``Worker.loop``/``Scheduler.loop(now)``):

- ``intake``: the spool's requests into jobs (the decisions: ``orchd.ops.intake``);
- ``inbox``: bundles from the inbox, and the requests for this site they brought;
- ``schedules``: due schedule slots, the timer armed at the next one;
- ``calls``: the control API's calls, routed to actions: writes on the loop's thread, reads and
  exports on ``lanes`` beside it (threads with connections of their own);
- ``housekeeping``: pruning, the wall clock watch, systemd's status and watchdog;
- ``wake``: watchdog's observer and APScheduler's timer, behind one wake-up adapter;
- ``root``: the loop, which owns the clock and the order, signals and policy reloads;
- ``common`` (the JSON log, the daemon's own events) and ``env`` (its paths, its built-in job
  type's environment).

A test drives a part with a fixed ``now_ms`` and no daemon process (tests/integration/
test_daemon_parts.py).
"""
