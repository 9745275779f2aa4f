"""The JetStream streams and consumers of a site's remote runs (adapters layer; imports ``nats``,
the ``orchd[workers]`` extra).

- ``ORCHD_SITE_WORK`` holds the runs offered (``orchd.SITE.work.TYPE``), a work queue on file
  storage: a message leaves it once a worker acknowledged it. A run is published with its run id
  as ``Nats-Msg-Id``, so the same run published again within ``DUPLICATE_WINDOW_S`` (the daemon
  republishing after NATS came back) is answered as a duplicate and stored once.
- One durable pull consumer per job type (``type_TYPE``), its ``max_ack_pending`` the type's
  concurrency, its ``ack_wait`` the remote lease (a worker's in-progress heartbeats hold it), at
  most ``max_deliver`` deliveries.
- ``ORCHD_SITE_UNDELIVERABLE`` keeps JetStream's advisories of the offers it stopped delivering
  (a type's consumer reached ``max_deliver``: every worker handed the offer back), read by the
  daemon's durable consumer ``daemon``: an advisory sent while the daemon was down or cut off
  waits there, where a plain subscription would have lost it and left the run unclaimed forever.
- ``ORCHD_SITE_RESULTS`` holds the workers' results (``orchd.SITE.results.WORKER``), a work queue
  too, de-duplicated by run id; the daemon reads it through its durable consumer ``daemon`` and
  acknowledges a result once its ``run.ended`` is committed, so a result waits there while the
  daemon is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nats.js import api
from nats.js.errors import NotFoundError

from orchd.core import remote

from .permissions import consumer, undeliverable_subject, work_stream

DUPLICATE_WINDOW_S = 600.0
RESULTS_CONSUMER = "daemon"


def results_stream(site: str) -> str:
    return f"ORCHD_{site.upper().replace('-', '_')}_RESULTS"


def undeliverable_stream(site: str) -> str:
    return f"ORCHD_{site.upper().replace('-', '_')}_UNDELIVERABLE"


async def ensure(
    js: Any, site: str, concurrency: Mapping[str, int], *, lease_ms: int, max_deliver: int
) -> None:
    """Make (or bring up to date) the site's streams and consumers: a consumer per job type in
    ``concurrency`` (type -> its most runs at once)."""
    for name, subjects in (
        (work_stream(site), f"orchd.{site}.work.>"),
        (results_stream(site), f"orchd.{site}.results.>"),
        (undeliverable_stream(site), undeliverable_subject(site)),
    ):
        config = api.StreamConfig(
            name=name,
            subjects=[subjects],
            retention=api.RetentionPolicy.WORK_QUEUE,
            storage=api.StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_S,
        )
        try:
            await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
    for job_type, most in sorted(concurrency.items()):
        await js.add_consumer(
            work_stream(site),
            api.ConsumerConfig(
                durable_name=consumer(job_type),
                filter_subject=remote.subject(site, "work", job_type),
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=lease_ms / 1000,
                max_ack_pending=most,
                max_deliver=max_deliver,
            ),
        )
    for name, subjects in (
        (results_stream(site), f"orchd.{site}.results.>"),
        (undeliverable_stream(site), undeliverable_subject(site)),
    ):
        await js.add_consumer(
            name,
            api.ConsumerConfig(
                durable_name=RESULTS_CONSUMER,
                filter_subject=subjects,
                ack_policy=api.AckPolicy.EXPLICIT,
                ack_wait=30.0,
            ),
        )
