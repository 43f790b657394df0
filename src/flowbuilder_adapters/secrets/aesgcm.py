"""Secret values in the database, encrypted with AES-256-GCM (`USE_DB_SECRETS=true`).

Each row of `credential_secrets` holds the id of the key that encrypted it, a fresh 12-byte
random nonce, and the ciphertext (with its 16-byte tag) of the values as compact JSON. The
associated data binds the ciphertext to its owner and credential: moved to another row, owner
or credential it no longer decrypts. Keys come from a `Keyring` and never touch the database.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias, cast

import msgspec
from cryptography.exceptions import InvalidTag
from sqlalchemy import Row, delete, false, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.tables import credential_secrets
from flowbuilder_core.credentials.errors import SecretNotFoundError, SecretUnreadableError
from flowbuilder_core.credentials.model import (
    CredentialId,
    SecretBinding,
    SecretData,
    SecretRef,
)
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.ids import UserId

__all__ = ["REF_PREFIX", "AesGcmSecretStore", "UnknownKeyError", "associated_data", "reencrypt"]

REF_PREFIX = "db:"
NONCE_BYTES = 12
_AD_PREFIX = b"flowbuilder.credential.v1\x00"

_log = logging.getLogger(__name__)
_AnyRow: TypeAlias = Row[*tuple[Any, ...]]
_values_decoder = msgspec.json.Decoder(dict[str, str])
_encoder = msgspec.json.Encoder()


class UnknownKeyError(SecretUnreadableError):
    """A stored secret names a key id the keyring does not hold. Names the key id (an id is
    not key material), so that an operator knows which key to add back."""

    def __init__(self, key_id: str, secret_id: uuid.UUID) -> None:
        super().__init__(
            f"Secret {secret_id} is encrypted with key id {key_id!r}, which is not in "
            "SECRETS_ENCRYPTION_KEY; add that key back (after the first) and run again."
        )
        self.key_id = key_id
        self.secret_id = secret_id


def associated_data(binding: SecretBinding) -> bytes:
    """What the ciphertext is bound to: the owner and the credential. Unambiguous even if an
    owner id held a NUL, since a credential id always has the same length."""
    return (
        _AD_PREFIX
        + binding.owner_id.encode("utf-8")
        + b"\x00"
        + str(binding.credential_id).encode("ascii")
    )


def _now_of(clock: Clock | Callable[[], datetime]) -> Callable[[], datetime]:
    now = getattr(clock, "now", None)
    return cast("Callable[[], datetime]", now if callable(now) else clock)


def _secret_id(ref: SecretRef) -> uuid.UUID | None:
    if not ref.value.startswith(REF_PREFIX):
        return None
    try:
        return uuid.UUID(ref.value.removeprefix(REF_PREFIX))
    except ValueError:
        return None


def _ref(secret_id: uuid.UUID) -> SecretRef:
    return SecretRef(f"{REF_PREFIX}{secret_id}")


def _seal(keyring: Keyring, binding: SecretBinding, plaintext: bytes) -> dict[str, Any]:
    """The key id, nonce and ciphertext columns of `plaintext` under the primary key."""
    key_id = keyring.primary_id
    cipher = keyring.cipher(key_id)
    assert cipher is not None  # the primary id is always in the keyring
    nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far beyond any row count here
    ciphertext = cipher.encrypt(nonce, plaintext, associated_data(binding))
    return {"key_id": key_id, "nonce": nonce, "ciphertext": ciphertext}


def _open(
    keyring: Keyring,
    binding: SecretBinding,
    secret_id: uuid.UUID,
    key_id: str,
    nonce: bytes,
    ciphertext: bytes,
) -> bytes:
    """The plaintext of a row, or UnknownKeyError / SecretUnreadableError: never garbage."""
    cipher = keyring.cipher(key_id)
    if cipher is None:
        raise UnknownKeyError(key_id, secret_id)
    if len(nonce) != NONCE_BYTES:
        raise SecretUnreadableError
    try:
        return cipher.decrypt(nonce, ciphertext, associated_data(binding))
    except InvalidTag:
        raise SecretUnreadableError from None


class AesGcmSecretStore(SecretStore):
    """Secrets in `credential_secrets`, on the scope's connection: a secret written with its
    credential row commits, or rolls back, with it.

    References are `db:<row id>`. A row whose key id is not in the keyring, or that fails
    authentication (tampered, moved, or read with another binding), is SecretUnreadableError.
    """

    def __init__(
        self,
        connection: AsyncConnection,
        keyring: Keyring,
        clock: Clock | Callable[[], datetime],
    ) -> None:
        self._connection = connection
        self._keyring = keyring
        self._now = _now_of(clock)

    def __repr__(self) -> str:
        return f"AesGcmSecretStore(keyring={self._keyring!r})"

    async def put(self, binding: SecretBinding, data: SecretData) -> SecretRef:
        secret_id = uuid.uuid4()
        sealed = _seal(self._keyring, binding, _encoder.encode(dict(data.values)))
        async with translate_errors():
            await self._connection.execute(
                insert(credential_secrets).values(
                    id=secret_id,
                    owner_id=binding.owner_id,
                    credential_id=binding.credential_id,
                    created_at=self._now(),
                    **sealed,
                )
            )
        return _ref(secret_id)

    async def get(self, ref: SecretRef, binding: SecretBinding) -> SecretData:
        secret_id = _secret_id(ref)
        if secret_id is None:
            raise SecretNotFoundError
        table = credential_secrets.c
        async with translate_errors():
            row = (
                await self._connection.execute(
                    select(table.key_id, table.nonce, table.ciphertext).where(table.id == secret_id)
                )
            ).one_or_none()
        if row is None:
            raise SecretNotFoundError
        try:
            plaintext = _open(
                self._keyring, binding, secret_id, row.key_id, row.nonce, row.ciphertext
            )
        except UnknownKeyError as error:
            # The caller learns only that the secret is unreadable; the operator, which key.
            _log.error("secret %s: key id %r is not in the keyring", secret_id, error.key_id)
            raise SecretUnreadableError from None
        except SecretUnreadableError:
            _log.warning("secret %s failed its integrity check", secret_id)
            raise
        return SecretData(_decode(plaintext))

    async def delete(self, ref: SecretRef) -> None:
        secret_id = _secret_id(ref)
        if secret_id is None:
            return
        async with translate_errors():
            await self._connection.execute(
                delete(credential_secrets).where(credential_secrets.c.id == secret_id)
            )

    async def unreferenced(
        self, referenced: set[SecretRef], before: datetime
    ) -> Sequence[SecretRef]:
        table = credential_secrets.c
        async with translate_errors():
            ids = (
                await self._connection.scalars(
                    select(table.id)
                    .where(table.created_at < before)
                    .order_by(table.created_at, table.id)
                )
            ).all()
        return [ref for ref in map(_ref, ids) if ref not in referenced]


def _decode(plaintext: bytes) -> Mapping[str, str]:
    try:
        return _values_decoder.decode(plaintext)
    except msgspec.DecodeError:
        # Authenticated, so written by us: only a bug gets here. The decoder's message could
        # quote the plaintext, hence `from None`.
        raise SecretUnreadableError from None


# ---------------------------------------------------------------------------------------------
# Re-encryption under the first key
# ---------------------------------------------------------------------------------------------


async def reencrypt(engine: AsyncEngine, keyring: Keyring, batch_size: int = 100) -> int:
    """Move every secret not under the keyring's first key to it; return how many moved.

    Works in batches of `batch_size` rows, each in its own short transaction, so it can run
    while the server serves: on Postgres a batch locks only its own rows and skips rows another
    transaction holds (`FOR UPDATE SKIP LOCKED`); on SQLite a batch holds the write lock for
    one batch. Each row is decrypted with its own binding (its `owner_id` and `credential_id`)
    and re-encrypted with a new nonce.

    Stops with UnknownKeyError (naming the key id) at a row whose key the keyring does not hold,
    and with SecretUnreadableError (naming the row) at a row that fails authentication; batches
    done before stay done. Servers must already run with the new first key, or they keep
    writing under the old one.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    moved = 0
    while True:
        async with translate_errors(), engine.begin() as connection:
            rows = await _next_batch(connection, keyring.primary_id, batch_size)
            for row in rows:
                moved += await _move(connection, keyring, row)
        if not rows:
            return moved


async def _next_batch(
    connection: AsyncConnection, primary_id: str, batch_size: int
) -> Sequence[_AnyRow]:
    """Up to `batch_size` rows not under `primary_id`, locked for this transaction: the one
    place where the dialects differ."""
    table = credential_secrets.c
    query = (
        select(
            table.id,
            table.owner_id,
            table.credential_id,
            table.key_id,
            table.nonce,
            table.ciphertext,
        )
        .where(table.key_id != primary_id)
        .order_by(table.id)
        .limit(batch_size)
    )
    if connection.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    elif connection.dialect.name == "sqlite":
        # No row locks, and a transaction that read before it writes fails if another process
        # wrote in between: take the database's write lock first (an UPDATE of no row does),
        # waiting up to the busy timeout, then read.
        await connection.execute(
            update(credential_secrets).where(false()).values(key_id=table.key_id)
        )
    return (await connection.execute(query)).all()


async def _move(connection: AsyncConnection, keyring: Keyring, row: _AnyRow) -> int:
    """Re-encrypt one row under the primary key; the number of rows changed (0 or 1)."""
    binding = SecretBinding(UserId(row.owner_id), CredentialId(row.credential_id))
    try:
        plaintext = _open(keyring, binding, row.id, row.key_id, row.nonce, row.ciphertext)
    except UnknownKeyError:
        raise
    except SecretUnreadableError:
        raise SecretUnreadableError(
            f"Secret {row.id} fails its integrity check under key id {row.key_id!r}; "
            "it cannot be re-encrypted."
        ) from None
    table = credential_secrets.c
    result = await connection.execute(
        update(credential_secrets)
        .where(table.id == row.id, table.key_id == row.key_id)
        .values(**_seal(keyring, binding, plaintext))
    )
    return result.rowcount
