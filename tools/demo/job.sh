#!/bin/sh
# make demo: stands in for the site's real job programs (/usr/lib/orchd/jobs/*). It says what it
# was asked to do, as a feed refresh or an export would log it, and succeeds.
name=$(basename "$0")
echo "$name: $* (job $ORCHD_JOB_ID, attempt $ORCHD_ATTEMPT, key $ORCHD_IDEMPOTENCY_KEY)"
sleep 0.2
echo "$name: done"
