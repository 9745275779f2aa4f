"""Test doubles for the ports: a clock the test moves, entropy from a counter; the in-memory
ledger is ``tests/memory_ledger.MemoryLedger``."""

from __future__ import annotations


class FakeClock:
    """Wall-clock milliseconds that change only when the test says so."""

    def __init__(self, now_ms: int = 1_764_201_600_000) -> None:  # 2025-11-27T00:00:00Z
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now

    def monotonic_ms(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


class CountingEntropy:
    """Distinct, repeatable 'random' bytes: a counter, big-endian."""

    def __init__(self) -> None:
        self.count = 0

    def token(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            self.count += 1
            out += self.count.to_bytes(10, "big")
        return bytes(out[:size])
