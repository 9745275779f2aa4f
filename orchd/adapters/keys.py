"""The site's Ed25519 signing key and public key files (adapters layer).

Rules:
- Signatures are made and checked with PyNaCl; key files are PEM (PKCS#8 for the private key,
  SubjectPublicKeyInfo for public keys), read and written with ``cryptography`` so that
  ``openssl pkey`` can inspect them.
- The private key lives in ``STATE_DIR/keys/site.key``, mode 0600, created exclusively (never
  overwritten) and fsynced. A key file that is not a regular file, is a symlink, is owned by
  another user, or that group or others may read or write, is refused, never used.
- Files read from outside (public keys given to ``keys trust``) are capped at 16 KiB and must hold
  exactly one Ed25519 public key.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from orchd.core import dsse
from orchd.errors import BadInput, KeyFileUnsafe, StorageError

from . import files

KEY_DIR = "keys"
SITE_KEY = "site.key"
CLAIM_SECRET = "claims.secret"  # noqa: S105 (a file name) in the state dir: claim tokens come from it
MAX_KEY_FILE = 16 * 1024


@dataclass(frozen=True, slots=True)
class SiteKey:
    """A signing key: the ``Signer`` port."""

    signing: SigningKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing.verify_key)

    @property
    def key_id(self) -> str:
        return dsse.key_id(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return bytes(self.signing.sign(data).signature)


def verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``public_key``'s Ed25519 signature of ``data``."""
    try:
        VerifyKey(public_key).verify(data, signature)
    except (BadSignatureError, ValueError, TypeError):
        return False
    return True


def generate() -> SiteKey:
    return SiteKey(SigningKey.generate())


def write_private(path: Path, key: SiteKey) -> None:
    """Write ``key`` to a new file at ``path`` (mode 0600); refuses to replace any file."""
    pem = Ed25519PrivateKey.from_private_bytes(bytes(key.signing)).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        files.write_new(path, pem, 0o600)
        files.fsync_dir(path.parent)
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc


def read_secret(path: Path, what: str) -> str:
    """A secret's text (a NATS password), from a file refused when unsafe as a key file is: a
    symlink, not a regular file, another owner, or readable or writable by group or others."""
    text = _read_capped(path, private=True, what=what).decode("utf-8", errors="replace").strip()
    if not text or not text.isprintable():
        raise BadInput(detail=f"{path} holds no {what}: one printable line is expected")
    return text


def nats_secrets(
    password_file: Path | str | None, nkey_file: Path | str | None
) -> tuple[str | None, str | None]:
    """A NATS user's (password, nkey seed), each read from its file if one is named (``""``
    names none), each file refused when unsafe (``read_secret``)."""
    password = read_secret(Path(password_file), "NATS password") if password_file else None
    seed = read_secret(Path(nkey_file), "NATS nkey seed") if nkey_file else None
    return password, seed


CLAIM_SECRET_BYTES = 32


def claim_secret(state_dir: Path) -> bytes:
    """The daemon's secret its claim tokens are derived from (``core.remote.claim_token``):
    made once (32 random bytes, mode 0600) and kept, so a daemon started again knows the
    claims it granted."""
    path = state_dir / CLAIM_SECRET
    if os.path.lexists(path):
        data = _read_capped(path, private=True, what="claim secret")
        try:
            secret = bytes.fromhex(data.decode())
        except ValueError:
            secret = b""
        if len(secret) != CLAIM_SECRET_BYTES:
            raise KeyFileUnsafe(
                path=path,
                detail=f"it holds no {CLAIM_SECRET_BYTES}-byte hex secret (remove it and a new "
                "one is made; runs claimed under the old one then lapse and are retried)",
            )
        return secret
    secret = os.urandom(CLAIM_SECRET_BYTES)
    try:
        files.write_new(path, secret.hex().encode(), 0o600)
        files.fsync_dir(path.parent)
    except FileExistsError:  # made beside this call: that one is the secret
        return claim_secret(state_dir)
    except OSError as exc:
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    return secret


def _read_capped(path: Path, *, private: bool, what: str = "key file") -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInput(detail=f"no {what} at {path}") from None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symlink
            raise KeyFileUnsafe(path=path, detail="it is a symbolic link") from None
        raise StorageError(path=path, detail=exc.strerror or str(exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileUnsafe(path=path, detail="it is not a regular file")
        if private and info.st_uid != os.geteuid():
            raise KeyFileUnsafe(path=path, detail=f"it is owned by uid {info.st_uid}")
        if private and info.st_mode & 0o077:
            mode = oct(stat.S_IMODE(info.st_mode))
            raise KeyFileUnsafe(path=path, detail=f"its mode {mode} lets others read or write it")
        if info.st_size > MAX_KEY_FILE:
            raise BadInput(detail=f"{path} is larger than {MAX_KEY_FILE} bytes: not a {what}")
        return os.read(fd, MAX_KEY_FILE + 1)
    finally:
        os.close(fd)


def read_private(path: Path) -> SiteKey:
    data = _read_capped(path, private=True)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadInput(detail=f"{path} holds no unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BadInput(detail=f"{path} holds a key that is not Ed25519")
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SiteKey(SigningKey(raw))


def public_pem(public_key: bytes) -> bytes:
    return Ed25519PublicKey.from_public_bytes(public_key).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def read_public(path: Path) -> bytes:
    """The raw 32-byte Ed25519 public key in a PEM file."""
    data = _read_capped(path, private=False)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise BadInput(detail=f"{path} holds no PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BadInput(detail=f"{path} holds a public key that is not Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
