#!/bin/sh
# make demo: orchd on a throw-away site. Grows with each capability; it must always work.
set -eu
ORCHD_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/orchd-demo.XXXXXX")
ORCHD_POLICY_DIR="$(cd "$(dirname "$0")/.." && pwd)/policies/examples"
export ORCHD_STATE_DIR ORCHD_POLICY_DIR
trap 'rm -rf "$ORCHD_STATE_DIR"' EXIT
say() { printf '\n== %s\n' "$*"; }

say "check the example policy of a vulnerability-operations site"
orchd policy check

say "create site 'hq' in $ORCHD_STATE_DIR"
orchd init --site-id hq

say "submit three feed refreshes and a VEX ingest"
for feed in nvd ghsa osv; do
    orchd jobs submit feed-refresh --source "$feed" --param window=24h --key "refresh-$feed-demo"
done
vex=$(orchd jobs submit vex-ingest --source vendor-vex --param format=openvex --priority 5)

say "submit the nvd refresh again with the same key: nothing new is recorded"
orchd jobs submit feed-refresh --source nvd --param window=24h --key refresh-nvd-demo

say "the nvd mirror was down for three hours: see which hourly slots a backfill would create"
orchd backfill nvd-hourly --from 2026-11-20T00:00Z --to 2026-11-20T02:59Z \
    --reason "nvd mirror outage" --ticket SEC-4711 --dry-run

say "create them (one transaction, audited with reason and ticket); a second run adds nothing"
orchd backfill nvd-hourly --from 2026-11-20T00:00Z --to 2026-11-20T02:59Z \
    --reason "nvd mirror outage" --ticket SEC-4711
orchd backfill nvd-hourly --from 2026-11-20T00:00Z --to 2026-11-20T02:59Z \
    --reason "nvd mirror outage" --ticket SEC-4711

say "cancel the osv refresh: the nightly run covers it"
osv=$(orchd jobs list --source osv --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["job_id"])')
orchd jobs cancel "$osv" --reason "covered by osv-nightly"

say "the queue"
orchd jobs list

say "pause the ghsa source while its mirror re-syncs"
orchd sources pause ghsa --reason "mirror re-sync"

say "slow the nvd feed down on this site until further notice, then look at the quotas"
orchd quota set source:nvd --rate 2/hour --reason "upstream rate limit" --ticket SEC-4712
orchd quota show

say "the site at a glance"
orchd status

say "one job, with its history"
orchd jobs show "$vex"

say "verify every hash chain and that the projections equal a rebuild"
orchd ledger verify

say "done: a site with 7 jobs (one cancelled), every change audited and the ledger verified"
echo "   (the engine that runs them comes with the execution-engine issue)"
