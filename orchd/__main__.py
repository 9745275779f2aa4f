"""Entry point for ``python -m orchd``."""

from orchd.cli import main

main()
