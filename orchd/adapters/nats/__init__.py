"""NATS JetStream for remote workers and the event stream (adapters layer, issue 26):
``permissions`` (the server's authorization block: each worker tied to its own subjects) and
``streams``, ``dispatch`` (the daemon's side), ``worker`` (``orchd worker``'s) and ``events``
(the event stream), which import ``nats``, the ``orchd[workers]`` extra. This package itself
imports nothing of it: ``client_missing`` is what to raise when it is not installed."""

from orchd.errors import ConfigInvalid


def client_missing(where: str, key: str) -> ConfigInvalid:
    """The error of a command or setting (``where``, ``key``) that needs the NATS client where
    the ``orchd[workers]`` extra is not installed."""
    return ConfigInvalid(
        where=where,
        key=key,
        problem="the NATS client is not installed here: install orchd[workers]",
    )
