"""``python3 -m orchd.examples.jobs NAME ARGS...``: one of the example policy's job programs."""

from orchd.examples.jobs import run

run()
