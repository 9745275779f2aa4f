#!/bin/sh
# make demo: orchd on a throw-away site. Grows with each capability; it must always work.
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/orchd-demo.XXXXXX")
trap 'rm -rf "$DEMO"' EXIT
ORCHD_STATE_DIR="$DEMO/site"
ORCHD_POLICY_DIR="$DEMO/policies"
export ORCHD_STATE_DIR ORCHD_POLICY_DIR
say() { printf '\n== %s\n' "$*"; }

# The example policies as shipped: their job programs are orchd's stand-ins
# (orchd-example-job, installed beside orchd), which say what they were asked to do and succeed. A copy,
# since the daemon's part adds a schedule to it.
mkdir -p "$ORCHD_POLICY_DIR"
cp "$REPO"/policies/examples/*.yaml "$ORCHD_POLICY_DIR/"

say "check the example policy of a vulnerability-operations site"
orchd policy check

say "create site 'hq' in $ORCHD_STATE_DIR"
orchd init --site-id hq

say "submit three feed refreshes, the nvd index that waits for the nvd refresh, a VEX ingest"
for feed in nvd ghsa osv; do
    orchd jobs submit feed-refresh --source "$feed" --param window=24h --key "refresh-$feed-demo"
done
index=$(orchd jobs submit feed-index --source nvd)
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
orchd quota set source:nvd --rate 2/hour --burst 5 --reason "upstream rate limit" --ticket SEC-4712
orchd quota show

say "run the queue in this process until nothing more may run within 5 seconds"
orchd work --until-idle --max-wait 5

say "the site at a glance: ghsa stays paused, the other feeds are fresh"
orchd status

say "the nvd index ran after the nvd refresh; its history and output"
orchd jobs show "$index"

say "verify every hash chain and that the projections equal a rebuild"
orchd ledger verify

say "carry the state across the air gap: a second site, 'enclave', trusts hq's key and imports"
ENCLAVE="$DEMO/enclave"
orchd --state-dir "$ENCLAVE" init --site-id enclave
orchd keys export-public "$DEMO/hq.pem"
orchd --state-dir "$ENCLAVE" keys trust hq "$DEMO/hq.pem" --reason "demo key ceremony"
echo "hq has neither the enclave's key nor word from it yet: a first contact, so --new-peer"
orchd bundle export --out "$DEMO/hq-1.orchkit" --peer enclave --new-peer
orchd bundle inspect "$DEMO/hq-1.orchkit"
orchd --state-dir "$ENCLAVE" bundle verify "$DEMO/hq-1.orchkit"
orchd --state-dir "$ENCLAVE" bundle import "$DEMO/hq-1.orchkit"
say "importing the same bundle again changes nothing, and says so"
orchd --state-dir "$ENCLAVE" bundle import "$DEMO/hq-1.orchkit"
say "a bundle changed in transit is refused, and the enclave's ledger is untouched"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-2000] ^= 1; open(sys.argv[2], "wb").write(b)' \
    "$DEMO/hq-1.orchkit" "$DEMO/tampered.orchkit"
if orchd --state-dir "$ENCLAVE" bundle import "$DEMO/tampered.orchkit"; then
    echo "tampered bundle accepted: this is a bug" >&2; exit 1
fi
orchd --state-dir "$ENCLAVE" ledger verify

say "the daemon: a schedule every minute, requests through the spool, then SIGTERM"
cat > "$ORCHD_POLICY_DIR/demo.yaml" <<'YAML'
version: 1
schedules:
  demo-every-minute:
    job_type: vex-ingest
    source: vendor-vex
    cron: "* * * * *"
YAML
orchd run --rescan 1 --grace 5 2> "$DEMO/daemon.log" &
daemon=$!
for n in 1 2 3; do orchd jobs submit rescan --source fleet --param scope=demo-$n --spool; done
spooled() { orchd jobs list --json | python3 -c 'import json,sys; print(sum(j["key"].startswith("spool:") and j["state"] == "succeeded" for j in json.load(sys.stdin)))'; }
scheduled() { orchd jobs list --json | python3 -c 'import json,sys; print(sum((j["schedule"] or "") == "demo-every-minute" and j["state"] == "succeeded" for j in json.load(sys.stdin)))'; }
for _ in $(seq 1 100); do [ "$(spooled)" = 3 ] && break; sleep 0.2; done
echo "spooled requests run: $(spooled) of 3"

say "meanwhile, a second daemon at the enclave: hq asks it for a rescan; bundles go by outbox and inbox"
ENCLAVE_POLICY="$DEMO/enclave-policies"
mkdir -p "$ENCLAVE_POLICY"
cp "$ORCHD_POLICY_DIR"/*.yaml "$ENCLAVE_POLICY/"
rm "$ENCLAVE_POLICY/demo.yaml"
printf 'version: 1\naccept:\n  hq: [rescan]\n' > "$ENCLAVE_POLICY/accept.yaml"
echo "the enclave runs rescans when hq asks (its accept.yaml), nothing else"
orchd --state-dir "$ENCLAVE" keys export-public "$DEMO/enclave.pem"
orchd keys trust enclave "$DEMO/enclave.pem" --reason "demo key ceremony"
at_enclave() { orchd --state-dir "$ENCLAVE" --policy-dir "$ENCLAVE_POLICY" "$@"; }
orchd --state-dir "$ENCLAVE" --policy-dir "$ENCLAVE_POLICY" run --rescan 1 --grace 5 \
    2> "$DEMO/enclave.log" &
enclave_daemon=$!
until_true() {  # until_true WHAT COMMAND...: poll for up to 60 s
    what=$1; shift
    for _ in $(seq 1 300); do "$@" && return 0; sleep 0.2; done
    echo "timed out waiting for $what" >&2; exit 1
}
until_true "the enclave's daemon" test -S "$ENCLAVE/orchd.sock"
request=$(orchd jobs submit rescan --site enclave --source fleet --param scope=dmz --key rescan-dmz)
echo "hq asked for request $request; hq's daemon writes a bundle for the enclave to its outbox:"
orchd jobs submit bundle-export --param peer=enclave --key demo-export-1 > /dev/null
one_file() { [ -n "$(ls "$1" 2>/dev/null)" ]; }
until_true "hq's outbox" one_file "$ORCHD_STATE_DIR/outbox"
carried=$(ls "$ORCHD_STATE_DIR/outbox")
echo "  $carried"
echo "an operator carries it across the gap into the enclave's inbox (tmp/, then new/)"
mkdir -p "$ENCLAVE/inbox/tmp" "$ENCLAVE/inbox/new"
cp "$ORCHD_STATE_DIR/outbox/$carried" "$ENCLAVE/inbox/tmp/$carried"
mv "$ENCLAVE/inbox/tmp/$carried" "$ENCLAVE/inbox/new/$carried"
until_true "the enclave's import" test -e "$ENCLAVE/inbox/imported/$carried"
rescan_done() { orchd --state-dir "$ENCLAVE" jobs list --state succeeded --json | grep -q "request:hq:$request"; }
until_true "the rescan at the enclave" rescan_done
echo "the enclave imported it, accepted the request and ran the rescan; it exports back:"
at_enclave jobs submit bundle-export --param peer=hq --key demo-export-back > /dev/null
until_true "the enclave's outbox" one_file "$ENCLAVE/outbox"
back=$(ls "$ENCLAVE/outbox")
mkdir -p "$ORCHD_STATE_DIR/inbox/tmp" "$ORCHD_STATE_DIR/inbox/new"
cp "$ENCLAVE/outbox/$back" "$ORCHD_STATE_DIR/inbox/tmp/$back"
mv "$ORCHD_STATE_DIR/inbox/tmp/$back" "$ORCHD_STATE_DIR/inbox/new/$back"
until_true "hq's import" test -e "$ORCHD_STATE_DIR/inbox/imported/$back"
say "at hq: the request's answer and the enclave's run, the receipt, the enclave's audit trail"
orchd jobs show "$request"
orchd status | sed -n '/^peers/,$p'
orchd audit tail -n 40 | grep ' enclave/' | tail -n 8
say "what an administrator watches: hq's metrics (as Prometheus scrapes them) and orchd doctor"
orchd metrics | grep -E '^orchd_(queue_depth|runs_total|bundle_(ex|im)ports_total|peer_last_import)'
orchd doctor
say "back at hq's daemon: waiting for its every-minute schedule's next slot (within a minute)"
for _ in $(seq 1 130); do [ "$(scheduled)" -ge 1 ] && break; sleep 0.5; done
echo "scheduled slots run: $(scheduled)"
say "the console: hq's daemon serves it on its socket; orchd console forwards a loopback port"
echo "a sign-in path the daemon made for this user (it works once, for two minutes):"
orchd console --link-only | sed 's/token=.*/token=.../'
kill -TERM "$daemon" "$enclave_daemon"
wait "$daemon"
echo "hq's daemon stopped (exit $?); the last lines of its log, one JSON object per line:"
wait "$enclave_daemon"
tail -n 12 "$DEMO/daemon.log"
orchd jobs list --state succeeded
orchd ledger verify
at_enclave ledger verify
say "an online backup of hq's ledger, verified end to end (orchd ledger restore puts it back)"
orchd ledger backup "$DEMO/hq-backup.db"

say "done: jobs run under limits, state carried both ways across the gap, the daemons served; all verified"
echo "to watch a running site in a browser: orchd console   (docs/CONSOLE.md)"
