"""The keys that encrypt secrets in the database: `SECRETS_ENCRYPTION_KEY`, parsed.

The format is comma-separated `<key id>:<base64 of 32 bytes>` entries; the first encrypts and
all decrypt, so a rotation puts the new key first and keeps the old ones until
`flowbuilder secrets reencrypt` has moved every row. A bare base64 key (no `:`) is one entry
whose id is derived from the key (`k` + the first 12 hex digits of its SHA-256), so an operator
who started with a bare key can later write `new:<key>,<old bare key>` and the rows written
under the old key still find it.

No message, log line or `repr` of this module ever shows key material: errors name the entry
by position only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KEY_BYTES", "Keyring", "KeyringError"]

KEY_BYTES = 32  # AES-256
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV = "SECRETS_ENCRYPTION_KEY"

_log = logging.getLogger(__name__)


class KeyringError(ValueError):
    """The keyring text is not valid. The message names the entry by position, never its key."""


class Keyring:
    """An ordered set of AES-256 keys by id: the first (`primary_id`) encrypts, all decrypt."""

    __slots__ = ("_ciphers", "_ids")

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyringError(f"{_ENV} holds no key")
        ciphers: dict[str, AESGCM] = {}
        for position, (key_id, key) in enumerate(keys, start=1):
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(
                    f"entry {position}: the key id must be 1 to 64 of A-Z a-z 0-9 _ . -"
                )
            if len(key) != KEY_BYTES:
                raise KeyringError(f"entry {position}: not {KEY_BYTES} bytes of base64")
            if key_id in ciphers:
                first = list(ciphers).index(key_id) + 1
                raise KeyringError(f"entry {position}: the same key id as entry {first}")
            ciphers[key_id] = AESGCM(key)
        self._ciphers = ciphers
        self._ids = tuple(ciphers)

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Parse the `SECRETS_ENCRYPTION_KEY` format. Raises KeyringError."""
        if not text.strip():
            raise KeyringError(f"{_ENV} is empty")
        keys: list[tuple[str, bytes]] = []
        for position, raw in enumerate(text.split(","), start=1):
            entry = raw.strip()
            if not entry:
                raise KeyringError(f"entry {position}: empty")
            key_id, separator, encoded = entry.partition(":")
            if separator:
                key_id = key_id.strip()
                if not _KEY_ID.fullmatch(key_id):
                    raise KeyringError(
                        f"entry {position}: the key id must be 1 to 64 of A-Z a-z 0-9 _ . -"
                    )
                key = _decode_key(encoded.strip(), position)
            else:
                key = _decode_key(key_id, position)
                key_id = derived_key_id(key)
            keys.append((key_id, key))
        return cls(keys)

    @classmethod
    def generate(cls) -> tuple[Keyring, str]:
        """A keyring of one fresh random key, and its text (to keep, for embedded mode)."""
        key = os.urandom(KEY_BYTES)
        text = f"{derived_key_id(key)}:{base64.b64encode(key).decode('ascii')}"
        return cls.parse(text), text

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """The keyring kept in `path`; KeyringError, naming the file, when there is none."""
        if not path.exists():
            raise KeyringError(f"no key file at {path}; start the embedded server to create it")
        return cls._read(path)

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        """The keyring kept in `path`; on first use, a generated one written there (mode 0600).

        Two processes starting at once agree on one key: the file appears complete or not at
        all (written aside, then hard-linked into place, which fails if it already exists).
        """
        if not path.exists():
            _, text = cls.generate()
            _create_private_file(path, text + "\n")
        return cls._read(path)

    @classmethod
    def _read(cls, path: Path) -> Keyring:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            _log.warning("the key file %s is readable by others (mode %o); use 0600", path, mode)
        return cls.parse(path.read_text(encoding="utf-8"))

    @property
    def primary_id(self) -> str:
        """The id of the key that encrypts."""
        return self._ids[0]

    @property
    def ids(self) -> tuple[str, ...]:
        """Every key id, in order: the primary first."""
        return self._ids

    def cipher(self, key_id: str) -> AESGCM | None:
        """The AES-GCM cipher of the key `key_id`; None when the keyring does not hold it."""
        return self._ciphers.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._ciphers

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self._ids)!r})"

    __str__ = __repr__


def derived_key_id(key: bytes) -> str:
    """The id of a bare key: stable, and reveals nothing useful about the key."""
    return "k" + hashlib.sha256(key).hexdigest()[:12]


def _decode_key(encoded: str, position: int) -> bytes:
    # Standard or URL-safe alphabet, padded. `from None`: the decoder's message could quote
    # part of the input.
    altchars = b"-_" if ("-" in encoded or "_" in encoded) else None
    try:
        key = base64.b64decode(encoded.encode("ascii"), altchars=altchars, validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise KeyringError(f"entry {position}: not {KEY_BYTES} bytes of base64") from None
    if len(key) != KEY_BYTES:
        raise KeyringError(f"entry {position}: not {KEY_BYTES} bytes of base64")
    return key


def _create_private_file(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 unless `path` exists; never a partial file."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        _write_private(aside, text)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process was first: use its key
        except OSError:  # a file system without hard links: exclusive create, not atomic
            with contextlib.suppress(FileExistsError):
                _write_private(path, text)
    finally:
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()


def _write_private(path: Path, text: str) -> None:
    with os.fdopen(
        os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
    ) as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
