#!/bin/sh
# make demo-workers: a daemon, a NATS JetStream server and two remote workers on this machine
# (127.0.0.1, free ports, a throw-away directory). A rescan job runs on one worker, which is
# killed mid-run; its supervisor fences the run, the daemon's lease lapses, and the job finishes
# on the other worker. Needs the venv's orchd, nats-py and nats-server (make installs them).
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/orchd-workers-demo.XXXXXX")
ORCHD_STATE_DIR="$DEMO/site"
ORCHD_POLICY_DIR="$DEMO/policies"
export ORCHD_STATE_DIR ORCHD_POLICY_DIR
PIDS=""
cleanup() {
    for pid in $PIDS; do kill "$pid" 2>/dev/null || true; done
    for pid in $PIDS; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$DEMO"
}
trap cleanup EXIT INT TERM
say() { printf '\n== %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
job_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

mkdir -p "$ORCHD_POLICY_DIR" "$DEMO/passwords" "$DEMO/nats"
cat >"$DEMO/rescan.sh" <<'EOF'
echo "rescan of $1 on $(hostname), run $ORCHD_RUN_ID"
sleep 6
echo "rescan of $1 done"
EOF
cat >"$ORCHD_POLICY_DIR/site.yaml" <<EOF
version: 1
job_types:
  rescan:
    argv: [/bin/sh, "$DEMO/rescan.sh", "{scope}"]
    params: {scope: fleet}
    remote: true
    backoff: {base_s: 1, cap_s: 1, jitter_pct: 0}
workers:
  w-1: [rescan]
  w-2: [rescan]
EOF
for user in orchd w-1 w-2; do
    python3 -c 'import secrets; print(secrets.token_hex(16))' >"$DEMO/passwords/$user.password"
    chmod 600 "$DEMO/passwords/$user.password"
done

say "a site whose job type rescan is remote: its runs go to the workers w-1 and w-2"
orchd init --site-id hq
orchd policy check

say "the NATS server's users and permissions, from the policy (each worker may speak only as itself)"
orchd workers --authorization "$DEMO/passwords" >"$DEMO/nats/authorization.json"
PORT=$(free_port)
python3 - "$DEMO/nats" "$PORT" <<'EOF'
import json, sys
folder, port = sys.argv[1], sys.argv[2]
block = json.load(open(f"{folder}/authorization.json"))
config = {"listen": f"127.0.0.1:{port}",
          "jetstream": {"store_dir": f"{folder}/store", "sync_interval": "always"}, **block}
json.dump(config, open(f"{folder}/nats.conf", "w"), indent=1)
EOF
python3 -c 'import json,sys; [print(" ", u["user"], "may publish", ", ".join(u["permissions"]["publish"]["allow"][:3]), "...") for u in json.load(open(sys.argv[1]))["authorization"]["users"]]' "$DEMO/nats/authorization.json"
nats-server -c "$DEMO/nats/nats.conf" >"$DEMO/nats/nats.log" 2>&1 &
PIDS="$PIDS $!"
URL="nats://127.0.0.1:$PORT"

say "start the daemon (nats_url, its password file, a lease of 2 s) and two workers"
ORCHD_NATS_URL="$URL" ORCHD_NATS_PASSWORD_FILE="$DEMO/passwords/orchd.password" \
    ORCHD_REMOTE_LEASE_S=2 orchd run --rescan 1 2>"$DEMO/daemon.log" &
PIDS="$PIDS $!"
for name in w-1 w-2; do
    orchd worker --site hq --name "$name" --url "$URL" --job-type rescan --allow /bin/sh \
        --log-dir "$DEMO/$name-logs" --password-file "$DEMO/passwords/$name.password" \
        --kill-grace 1 2>"$DEMO/$name.log" &
    eval "PID_$(echo "$name" | tr - _)=$!"
    PIDS="$PIDS $!"
done
tries=0
until grep -q '"msg": "ready"' "$DEMO/daemon.log"; do
    tries=$((tries + 1)); [ "$tries" -lt 100 ] || { cat "$DEMO/daemon.log"; exit 1; }
    sleep 0.2
done

say "submit a rescan; it is offered on NATS and claimed by a worker"
job=$(orchd jobs submit rescan --param scope=fleet)
worker=""
tries=0
while [ -z "$worker" ]; do
    tries=$((tries + 1)); [ "$tries" -lt 150 ] || { cat "$DEMO/daemon.log"; exit 1; }
    sleep 0.2
    worker=$(orchd jobs show "$job" --json | job_field 'next((r["worker"] for r in d["runs"] if r["worker"]), "")')
done
echo "job $job runs on $worker"
orchd workers

say "kill $worker mid-run (SIGKILL): its supervisor ends the job when the lease runs out"
eval "kill -KILL \$PID_$(echo "$worker" | tr - _)"

say "the daemon's lease lapses (interrupted, lease_lost); the retry runs on the other worker"
tries=0
until [ "$(orchd jobs show "$job" --json | job_field 'd["job"]["state"]')" = succeeded ]; do
    tries=$((tries + 1)); [ "$tries" -lt 200 ] || { orchd jobs show "$job"; exit 1; }
    sleep 0.2
done
orchd jobs show "$job" | sed -n '/^runs:/,/^history:/p'
orchd jobs logs "$job"
orchd ledger verify

say "done: the job ran once to its end, on the worker that was left, and the ledger says so"
