"""Use cases: what an operator or the daemon can do, over the ports only (ops layer)."""
