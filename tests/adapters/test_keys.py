"""The signing key file: written safely, refused when unsafe, PEM that openssl can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchd.adapters import keys
from orchd.errors import BadInput, KeyFileUnsafe, StorageError


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "site.key"
    keys.write_private(path, keys.generate())
    return path


def test_a_written_key_reads_back_the_same_and_is_owner_only(key_file: Path) -> None:
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.parent.stat().st_mode & 0o777 == 0o700
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    first, again = keys.read_private(key_file), keys.read_private(key_file)
    assert first.key_id == again.key_id and len(first.key_id) == 64


def test_an_existing_key_file_is_never_overwritten(key_file: Path) -> None:
    before = key_file.read_bytes()
    with pytest.raises(StorageError):
        keys.write_private(key_file, keys.generate())
    assert key_file.read_bytes() == before


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_file_others_may_read_is_refused(key_file: Path, mode: int) -> None:
    key_file.chmod(mode)
    with pytest.raises(KeyFileUnsafe, match="lets others read or write it"):
        keys.read_private(key_file)


def test_a_symlinked_key_file_is_refused(key_file: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.key"
    link.symlink_to(key_file)
    with pytest.raises(KeyFileUnsafe, match="symbolic link"):
        keys.read_private(link)


def test_a_fifo_or_directory_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyFileUnsafe, match="not a regular file"):
        keys.read_private(fifo)
    with pytest.raises(KeyFileUnsafe, match="not a regular file"):
        keys.read_private(tmp_path)


def test_garbage_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "junk.key"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(BadInput, match="no unencrypted PEM private key"):
        keys.read_private(path)


def test_a_public_key_round_trips_and_signatures_verify(tmp_path: Path) -> None:
    key = keys.generate()
    pem = tmp_path / "site.pem"
    pem.write_bytes(keys.public_pem(key.public_key))
    public = keys.read_public(pem)
    signature = key.sign(b"message")
    assert public == key.public_key
    assert keys.verify(public, b"message", signature)
    assert not keys.verify(public, b"messagE", signature)
    assert not keys.verify(keys.generate().public_key, b"message", signature)


def test_a_private_key_given_as_a_public_key_is_refused(key_file: Path) -> None:
    with pytest.raises(BadInput, match="no PEM public key"):
        keys.read_public(key_file)


def test_a_password_file_is_read_only_when_its_owner_alone_may_read_it(tmp_path: Path) -> None:
    path = tmp_path / "nats.password"
    with pytest.raises(BadInput, match="no NATS password at"):
        keys.read_secret(path, "NATS password")
    path.write_text("s3cret-pass\n")
    path.chmod(0o600)
    assert keys.read_secret(path, "NATS password") == "s3cret-pass"
    path.chmod(0o640)
    with pytest.raises(KeyFileUnsafe, match="lets others read or write it"):
        keys.read_secret(path, "NATS password")
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(KeyFileUnsafe, match="symbolic link"):
        keys.read_secret(link, "NATS password")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(BadInput, match="holds no NATS password"):
        keys.read_secret(empty, "NATS password")


def test_the_claim_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    made = keys.claim_secret(tmp_path)
    assert len(made) == 32 and keys.claim_secret(tmp_path) == made
    path = tmp_path / keys.CLAIM_SECRET
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(KeyFileUnsafe):
        keys.claim_secret(tmp_path)
    path.chmod(0o600)
    for bad in ("not hex", "", "ab" * 16, "a" * 20_000):  # none, empty, short, over the cap
        path.write_text(bad)
        with pytest.raises((KeyFileUnsafe, BadInput), match=r"32-byte hex secret|larger than"):
            keys.claim_secret(tmp_path)
