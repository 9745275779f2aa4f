"""Adapters: all I/O, one module per outside thing (adapters layer)."""
