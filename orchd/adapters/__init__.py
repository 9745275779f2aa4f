"""Adapters: all I/O, one module per outside thing (adapters layer).

Importing this package makes canonical JSON use orjson (``canonical.accelerate``): the same
bytes as the standard library's reference codec, several times faster on the paths every
event takes (sealing, parsing a ledger row or a bundle record).
"""

from functools import partial

import orjson

from orchd.core import canonical

canonical.accelerate(orjson.loads, partial(orjson.dumps, option=orjson.OPT_SORT_KEYS))
