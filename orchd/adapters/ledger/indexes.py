"""The indexes later migrations add for interactive reads (issues 22 and 24), each a reason
(adapters layer, the ledger's schema; ``schema.py`` lists them in order)."""

from __future__ import annotations

# pages of jobs by state or type in id order (keyset), no sort of every such job: the state index
# ends with the id (the engine's pending jobs still found by it), a type index by id (one write)
V17 = """
DROP INDEX jobs_by_state;
CREATE INDEX jobs_by_state ON jobs (state, job_id);
CREATE INDEX jobs_by_type_id ON jobs (job_type, job_id);
"""

V18 = """  -- each peer's newest bundle either way (status, metrics): one seek per peer
CREATE INDEX bundles_by_peer ON bundles (direction, site, at, bundle_id);
"""

# an id by its short form (core/ids.py), the expression ``ids_matching`` writes, in one seek
V19 = """
CREATE INDEX jobs_by_short_id ON jobs (substr(job_id, 19));
CREATE INDEX runs_by_short_id ON runs (substr(run_id, 19));
CREATE INDEX requests_by_short_id ON requests (substr(request_id, 19));
"""

# the audit trail since a time (``audit tail --since``, the console's range) found by a seek:
# a quiet day's few events are not looked for among every event of the year
V20 = """
CREATE INDEX events_by_time ON events (occurred_at);
"""

# the audit trail by who and under which ticket (``audit tail --actor/--ticket``, the console's
# filters) and by a type of a job's events other than the four every job has (a rare one, as
# ``job.request_answered``; those four fill a page within a few hundred events by position): a
# seek each, newest first by the position every index ends with. A ticket's and a type's hold
# only the events they name; each index costs every append it covers (docs/BENCHMARKS.md)
ACTOR = "json_extract(CAST(body AS TEXT), '$.actor.user')"
TICKET = "json_extract(CAST(body AS TEXT), '$.ticket')"
DENSE_TYPES = ("job.submitted", "run.leased", "run.started", "run.ended")
RARE = f"type NOT IN ({', '.join(repr(kind) for kind in DENSE_TYPES)})"  # a query repeats it
V21 = f"""
CREATE INDEX events_by_actor ON events ({ACTOR});
CREATE INDEX events_by_ticket ON events ({TICKET}) WHERE {TICKET} IS NOT NULL;
CREATE INDEX events_of_rare_type ON events (type) WHERE {RARE};
"""
