"""Child of test_sitelock: holds the site lock of STATE_DIR until its stdin is closed.

Usage: hold_lock.py STATE_DIR. Prints ``locked`` once it holds the lock.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orchd.adapters.sitelock import SiteLock

if __name__ == "__main__":
    with SiteLock(Path(sys.argv[1]) / "orchd.lock"):
        print("locked", flush=True)
        sys.stdin.read()
