"""The pure core: domain values and rules, no I/O, no clock reads, no randomness (core layer)."""
