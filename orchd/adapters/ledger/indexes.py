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
