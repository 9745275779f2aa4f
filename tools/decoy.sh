#!/bin/sh
# sh tools/decoy.sh COMMAND...: run COMMAND beside a decoy daemon of another site ("decoy") that
# serves the default socket /run/orchd/orchd.sock, then check that nothing reached the decoy and
# stop it by its pid. .ci/run uses it to prove that the daemon tests and the demo reach only the
# sites they name (issue "Every command reaches the site it names"). Needs a writable /run.
set -eu
REPO="$(cd "$(dirname "$0")/.." && pwd)"
ORCHD="$REPO/.venv/bin/orchd"
SOCKET=/run/orchd/orchd.sock
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orchd-decoy.XXXXXX")
PID=""
stop() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" || true
    fi
    rm -rf "$WORK"
}
trap stop EXIT
decoy() { env -u ORCHD_SOCKET -u ORCHD_STATE_DIR -u ORCHD_CONFIG "$ORCHD" --state-dir "$WORK/site" \
    --policy-dir "$REPO/tests/policies" --socket "$SOCKET" "$@"; }

mkdir -p /run/orchd || { echo "decoy: cannot create /run/orchd (run as root)" >&2; exit 1; }
decoy init --site-id decoy 2>/dev/null
env -u ORCHD_SOCKET -u ORCHD_STATE_DIR -u ORCHD_CONFIG "$ORCHD" --state-dir "$WORK/site" \
    --policy-dir "$REPO/tests/policies" --socket "$SOCKET" run --rescan 1 >"$WORK/daemon.log" 2>&1 &
PID=$!  # env execs orchd: this is the daemon's own pid
tries=0
# serving, and its own start recorded (the count below must not race the daemon's first event)
until decoy status >/dev/null 2>&1 &&
    decoy audit tail --type daemon.started --json 2>/dev/null | grep -q daemon.started; do
    tries=$((tries + 1))
    if [ "$tries" -gt 100 ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "decoy: the decoy daemon did not start:" >&2
        cat "$WORK/daemon.log" >&2
        exit 1
    fi
    sleep 0.2
done
before=$(decoy audit tail -n 100000 --json | wc -l)
echo "decoy: site 'decoy' serves $SOCKET (pid $PID); running: $*" >&2

"$@"

after=$(decoy audit tail -n 100000 --json | wc -l)
jobs=$(decoy jobs list --all-origins --json)
if [ "$after" != "$before" ] || [ "$jobs" != "[]" ]; then
    echo "decoy: something reached the decoy daemon ($before events before, $after after):" >&2
    decoy audit tail -n 20 >&2
    exit 1
fi
echo "decoy: nothing reached the decoy daemon" >&2
