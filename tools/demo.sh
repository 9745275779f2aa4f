#!/bin/sh
# make demo: orchd on a throw-away site. Grows with each capability; it must always work.
set -eu
ORCHD_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/orchd-demo.XXXXXX")
export ORCHD_STATE_DIR
trap 'rm -rf "$ORCHD_STATE_DIR"' EXIT
say() { printf '\n== %s\n' "$*"; }

say "create site 'hq' in $ORCHD_STATE_DIR"
orchd init --site-id hq

say "submit three feed refreshes and a VEX ingest"
for feed in nvd ghsa osv; do
    orchd jobs submit feed-refresh --source "$feed" --param window=24h --key "refresh-$feed-demo"
done
vex=$(orchd jobs submit vex-ingest --source vendor-vex --param format=openvex --priority 5)

say "submit the nvd refresh again with the same key: nothing new is recorded"
orchd jobs submit feed-refresh --source nvd --param window=24h --key refresh-nvd-demo

say "the queue"
orchd jobs list

say "one job, with its history"
orchd jobs show "$vex"

say "verify every hash chain and that the projections equal a rebuild"
orchd ledger verify

say "done: 1 site, 4 jobs queued, ledger verified (the engine that runs them comes next)"
