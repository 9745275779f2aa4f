"""The site identity file read back: whatever a file holds, it is a site's identity or refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchd.adapters import identity
from orchd.errors import BadInput


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"\xff", b"[" * 2000, b"{" * 5000],
    ids=["empty", "not an object", "not UTF-8", "nested past Python's depth", "over 4 KiB"],
)
def test_a_file_that_is_no_identity_is_refused_naming_it(raw: bytes, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="is not a site identity file of this orchd"):
        identity.parse(raw, tmp_path / "site.json")


def test_an_identity_is_read_back_as_written(tmp_path: Path) -> None:
    made = identity.new("hq")
    identity.write(tmp_path, made)
    assert identity.read(tmp_path) == made
