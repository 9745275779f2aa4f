#!/bin/sh
# The offline installation archive (make wheelhouse, make wheelhouse-check).
#
#   wheelhouse.sh build PYTHON OUT   orchd's wheel and every runtime dependency's wheel, the install
#                                    script and the systemd files, in one .tar.gz (uses the registry)
#   wheelhouse.sh check PYTHON OUT   unpack OUT, install it with no network (a network namespace of
#                                    its own where unshare allows, pip --no-index always) into a fresh
#                                    venv, then run orchd --version and a smoke job
set -eu
action=$1 python=$2 out=$3
name=$(basename "$out" .tar.gz)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build() {
    root="$work/$name"
    mkdir -p "$root/wheels" "$root/systemd"
    # with the workers extra: nats-py (pure Python), for orchd worker and a daemon's nats_url
    "$python" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$root/wheels" '.[workers]'

    cp tools/wheelhouse/install.sh "$root/install.sh"
    cp systemd/orchd.service systemd/orchd.sysusers systemd/orchd.tmpfiles \
        systemd/orchd-worker.service systemd/orchd-worker.sysusers "$root/systemd/"
    (cd "$root/wheels" && sha256sum -- *.whl > ../SHA256SUMS)
    mkdir -p "$(dirname "$out")"
    tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner -czf "$out.part" "$name"
    mv "$out.part" "$out"
    echo "wheelhouse: $out ($(ls "$root/wheels" | wc -l) wheels, $(du -h "$out" | cut -f1))"
}

check() {
    tar -C "$work" -xzf "$out"
    root="$work/$name"
    (cd "$root/wheels" && sha256sum --quiet -c ../SHA256SUMS)
    offline=""
    if unshare -rn true 2>/dev/null; then
        offline="unshare -rn"  # no network interface but loopback, down
    fi
    # shellcheck disable=SC2086  # $offline is a command prefix or nothing
    env -i PATH=/usr/bin:/bin HOME="$work" $offline sh "$root/install.sh" "$work/venv"
    orchd="$work/venv/bin/orchd"
    "$orchd" --version
    "$work/venv/bin/python" -c 'import nats, orchd.adapters.nats.worker'  # the workers extra
    mkdir -p "$work/policy"
    printf 'version: 1\njob_types:\n  smoke:\n    argv: [/bin/true]\n' > "$work/policy/site.yaml"
    site="--state-dir $work/site --policy-dir $work/policy"
    cd "$work"  # away from the source tree: only the installed orchd can answer
    # shellcheck disable=SC2086
    {
        $offline "$orchd" $site init --site-id smoke
        $offline "$orchd" $site jobs submit smoke --key smoke-1 >/dev/null
        $offline "$orchd" $site work --until-idle
        $offline "$orchd" $site jobs list --json | grep -q '"state": "succeeded"'
        $offline "$orchd" $site ledger verify
    }
    echo "wheelhouse-check: installed with no network${offline:+ ($offline)}; a smoke job ran"
}

"$action"
