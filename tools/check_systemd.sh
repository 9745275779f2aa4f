#!/bin/sh
# Check a unit (systemd/orchd.service by default) offline, one line per check: `systemd-analyze verify` finds nothing
# wrong with it, and `systemd-analyze security --offline=yes` rates its exposure at most
# MAX_EXPOSURE. Both run on a copy whose ExecStart= names the orchd given (verify wants an
# executable there). Needs systemd-analyze >= 250; as root, installs Debian's systemd if missing.
#
# usage: sh tools/check_systemd.sh ORCHD_EXECUTABLE [UNIT_FILE]
#        (make lint: sh tools/check_systemd.sh .venv/bin/orchd)
set -eu

MAX_EXPOSURE=2.0
MIN_SYSTEMD=250

fail() {
    echo "check_systemd: FAIL: $*" >&2
    exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || {
    echo "usage: sh tools/check_systemd.sh ORCHD_EXECUTABLE [UNIT_FILE]" >&2
    exit 2
}
unit=${2:-$(cd "$(dirname "$0")/.." && pwd)/systemd/orchd.service}
[ -f "$unit" ] || fail "no unit file at $unit"
[ -f "$1" ] && [ -x "$1" ] || fail "$1 is not an executable orchd (run make venv first)"
orchd=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")

if ! command -v systemd-analyze >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || fail "systemd-analyze is missing: as root, apt-get install systemd"
    echo "check_systemd: installing Debian's systemd for systemd-analyze"
    apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends systemd >/dev/null ||
        fail "apt-get could not install systemd"
fi
version=$(systemd-analyze --version | sed -n '1s/^systemd \([0-9][0-9]*\).*/\1/p')
[ -n "$version" ] && [ "$version" -ge "$MIN_SYSTEMD" ] ||
    fail "systemd-analyze ${version:-of unknown version} is older than $MIN_SYSTEMD (no --offline)"
echo "check_systemd: ok: systemd-analyze $version"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
name=$(basename "$unit")
copy=$work/$name
[ "$(grep -c '^ExecStart=' "$unit")" -eq 1 ] || fail "$unit must have one ExecStart= line"
# ExecStart=[prefixes]PATH ARGS -> ExecStart=[prefixes]$orchd ARGS
replacement=$(printf '%s' "$orchd" | sed 's/[&|\\]/\\&/g')
sed "s|^\(ExecStart=[-@:+!]*\)[^ ]*|\1$replacement|" "$unit" >"$copy"

# verify exits 0 on most mistakes ("Unknown key ..., ignoring"), so every line it prints about
# the unit is an error; lines about other units or the machine are shown, not counted
status=0
SYSTEMD_COLORS=0 systemd-analyze verify --man=no --recursive-errors=no "$copy" \
    >"$work/verify.out" 2>&1 || status=$?
problems=$(grep -F -e "$copy" -e "$name" "$work/verify.out" || true)
grep -v -F -e "$copy" -e "$name" "$work/verify.out" |
    sed "s|^|check_systemd: note: |" >&2 || true
if [ "$status" -ne 0 ] || [ -n "$problems" ]; then
    printf '%s\n' "$problems" | sed "s|$copy|$(printf '%s' "$unit" | sed 's/[&|\\]/\\&/g')|g" >&2
    fail "systemd-analyze verify: $unit has errors (exit status $status)"
fi
echo "check_systemd: ok: systemd-analyze verify $unit"

SYSTEMD_COLORS=0 systemd-analyze security --offline=yes --no-pager "$copy" \
    >"$work/security.out" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9.]*\).*/\1/p' "$work/security.out")
[ -n "$score" ] || {
    cat "$work/security.out" >&2
    fail "systemd-analyze security printed no overall exposure level"
}
if ! awk -v score="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(score <= max) }'; then
    cat "$work/security.out" >&2
    fail "exposure $score is above $MAX_EXPOSURE (systemd-analyze security --offline=yes)"
fi
echo "check_systemd: ok: exposure $score <= $MAX_EXPOSURE (systemd-analyze security --offline=yes)"
