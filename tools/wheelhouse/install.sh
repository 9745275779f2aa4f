#!/bin/sh
# Install (or upgrade) orchd from this wheelhouse on a host with no network.
#
#   sh install.sh [PREFIX]     PREFIX defaults to /opt/orchd; orchd lands in PREFIX/bin/orchd
#
# It makes a virtual environment at PREFIX with the host's python3 (3.11 or newer) and installs
# orchd, with its workers extra (nats-py: orchd worker, a daemon's nats_url), and every runtime
# dependency from ./wheels only (pip --no-index: nothing is fetched).
# Running it again with a newer wheelhouse upgrades in place; the site's state is not touched.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=${1:-/opt/orchd}
python=${PYTHON:-python3}

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "orchd needs Python >= 3.11")'
if [ ! -x "$prefix/bin/python" ]; then
    "$python" -m venv "$prefix"
fi
"$prefix/bin/python" -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$here/wheels" --upgrade 'orchd[workers]'
echo "installed $("$prefix/bin/orchd" --version) in $prefix"
