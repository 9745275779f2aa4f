"""A checkpoint's base rows are read back from their stored zstd frame a piece at a time."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import zstandard

from orchd.adapters.ledger.statements import FRAME_PIECE, compress, frame_lines


def rows(count: int) -> list[bytes]:
    """Lines that compress about as base rows do (each with a digest: little to squeeze)."""
    digest = hashlib.sha256
    return [
        json.dumps({"n": n, "h": digest(str(n).encode()).hexdigest()}).encode()
        for n in range(count)
    ]


def test_lines_come_back_whole_across_pieces() -> None:
    lines = rows(20_000)
    data, raw_size = compress(lines)
    assert raw_size > 4 * FRAME_PIECE and len(data) > FRAME_PIECE  # several pieces either side
    assert list(frame_lines(io.BytesIO(data))) == lines


def test_what_follows_the_last_newline_is_not_a_line() -> None:
    data = zstandard.ZstdCompressor().compress(b"a\nb\npartial")
    assert list(frame_lines(io.BytesIO(data))) == [b"a", b"b"]


def test_a_frame_cut_short_is_an_error_once_read_to_its_end() -> None:
    data, _ = compress(rows(5_000))
    with pytest.raises(zstandard.ZstdError, match="ends early"):
        list(frame_lines(io.BytesIO(data[: len(data) // 2])))
