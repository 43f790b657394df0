"""AesGcmSecretStore and `reencrypt` on real SQLite and Postgres databases: what is stored,
what a tampered or moved row does, key rotation, and the transaction the store writes in."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from flowbuilder_adapters.secrets.aesgcm import AesGcmSecretStore, UnknownKeyError, reencrypt
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.sql.tables import credential_secrets
from flowbuilder_core.credentials.errors import SecretNotFoundError, SecretUnreadableError
from flowbuilder_core.credentials.model import CredentialId, SecretBinding, SecretData, SecretRef
from flowbuilder_core.shared.ids import UserId

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CANARY = "canary-3f9d1c-do-not-store-in-clear"
KEYS = {name: os.urandom(32) for name in ("old", "new", "other")}
OWNER = UserId("user_owner")
OTHER = UserId("user_other")

# ---------------------------------------------------------------------------------------------
# Databases
# ---------------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'flowbuilder.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade(database_url)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


# ---------------------------------------------------------------------------------------------
# Factories and helpers
# ---------------------------------------------------------------------------------------------


def make_keyring(*ids: str) -> Keyring:
    return Keyring.parse(",".join(f"{i}:{base64.b64encode(KEYS[i]).decode()}" for i in ids))


def make_binding(**overrides: Any) -> SecretBinding:
    fields: dict[str, Any] = {"owner_id": OWNER, "credential_id": CredentialId(uuid.uuid4())}
    return SecretBinding(**(fields | overrides))


def make_data(**values: str) -> SecretData:
    return SecretData(values or {"username": "alice", "password": CANARY})


class SteppingClock:
    """Each reading is one second after the previous one."""

    def __init__(self, start: datetime = T0) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


async def put(
    engine: AsyncEngine,
    keyring: Keyring,
    binding: SecretBinding,
    data: SecretData | None = None,
    clock: SteppingClock | None = None,
) -> SecretRef:
    """Store a secret and commit."""
    async with engine.connect() as connection:
        store = AesGcmSecretStore(connection, keyring, clock or SteppingClock())
        ref = await store.put(binding, data or make_data())
        await connection.commit()
    return ref


async def get(
    engine: AsyncEngine, keyring: Keyring, ref: SecretRef, binding: SecretBinding
) -> SecretData:
    async with engine.connect() as connection:
        return await AesGcmSecretStore(connection, keyring, SteppingClock()).get(ref, binding)


def row_id(ref: SecretRef) -> uuid.UUID:
    return uuid.UUID(ref.value.removeprefix("db:"))


async def raw_row(engine: AsyncEngine, ref: SecretRef) -> dict[str, Any]:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                select(credential_secrets).where(credential_secrets.c.id == row_id(ref))
            )
        ).one()
    return dict(row._mapping)


async def change_row(engine: AsyncEngine, ref: SecretRef, **values: Any) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            update(credential_secrets)
            .where(credential_secrets.c.id == row_id(ref))
            .values(**values)
        )


async def rows_per_key(engine: AsyncEngine) -> dict[str, int]:
    table = credential_secrets.c
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(table.key_id, func.count().label("rows")).group_by(table.key_id)
        )
        return {row.key_id: row.rows for row in rows}


def flip_bit(value: bytes, index: int) -> bytes:
    changed = bytearray(value)
    changed[index] ^= 0x01
    return bytes(changed)


# ---------------------------------------------------------------------------------------------
# Storing and reading
# ---------------------------------------------------------------------------------------------


async def test_a_stored_secret_reads_back_with_its_binding(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    data = make_data(token="t0k3n", note="ünïcödé ✓", empty="")

    ref = await put(engine, keyring, binding, data)

    assert ref.value.startswith("db:")
    assert dict((await get(engine, keyring, ref, binding)).values) == dict(data.values)


async def test_each_put_stores_a_new_row_with_a_fresh_nonce(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()

    first = await put(engine, keyring, binding)
    second = await put(engine, keyring, binding)

    assert first != second
    one, two = await raw_row(engine, first), await raw_row(engine, second)
    assert len(one["nonce"]) == 12
    assert one["nonce"] != two["nonce"]
    assert one["ciphertext"] != two["ciphertext"]


async def test_each_row_records_its_binding_key_id_and_time(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()

    ref = await put(engine, keyring, binding, clock=SteppingClock(T0))

    row = await raw_row(engine, ref)
    assert row["owner_id"] == binding.owner_id
    assert row["credential_id"] == binding.credential_id
    assert row["key_id"] == "old"
    assert row["created_at"] == T0 + timedelta(seconds=1)


async def test_the_plaintext_is_in_no_column_of_the_stored_row(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")

    ref = await put(engine, keyring, make_binding(), make_data(api_key=CANARY))

    row = await raw_row(engine, ref)
    for value in row.values():
        if isinstance(value, bytes | bytearray | memoryview):
            assert CANARY.encode() not in bytes(value)
            assert base64.b64encode(CANARY.encode()) not in bytes(value)
        else:
            assert CANARY not in str(value)
    async with engine.connect() as connection:
        store = AesGcmSecretStore(connection, keyring, SteppingClock())
        assert base64.b64encode(KEYS["old"]).decode() not in repr(store)


@pytest.mark.parametrize(
    "value",
    ["", "db:", "db:not-a-uuid", f"db:{uuid.uuid4()}", f"memory:{uuid.uuid4()}", str(uuid.uuid4())],
)
async def test_an_unknown_or_malformed_reference_is_not_found(
    engine: AsyncEngine, value: str
) -> None:
    with pytest.raises(SecretNotFoundError):
        await get(engine, make_keyring("old"), SecretRef(value), make_binding())


async def test_delete_removes_the_secret_and_may_be_repeated(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    ref = await put(engine, keyring, binding)

    async with engine.connect() as connection:
        store = AesGcmSecretStore(connection, keyring, SteppingClock())
        await store.delete(ref)
        await store.delete(ref)
        await store.delete(SecretRef("db:not-a-uuid"))
        await store.delete(SecretRef(f"db:{uuid.uuid4()}"))
        await connection.commit()

    with pytest.raises(SecretNotFoundError):
        await get(engine, keyring, ref, binding)


async def test_unreferenced_lists_secrets_older_than_the_cutoff_that_nothing_references(
    engine: AsyncEngine,
) -> None:
    keyring = make_keyring("old")
    clock = SteppingClock(T0)  # puts at T0+1s, T0+2s, T0+3s, T0+4s
    refs = [await put(engine, keyring, make_binding(), clock=clock) for _ in range(4)]

    async with engine.connect() as connection:
        store = AesGcmSecretStore(connection, keyring, SteppingClock())
        found = await store.unreferenced(
            {refs[1], SecretRef("memory:elsewhere")}, T0 + timedelta(seconds=3)
        )

    assert list(found) == [refs[0]]


async def test_an_uncommitted_put_is_rolled_back_with_the_connection(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()

    async with engine.connect() as connection:
        store = AesGcmSecretStore(connection, keyring, SteppingClock())
        ref = await store.put(binding, make_data())
        assert await store.get(ref, binding)  # visible in its own transaction
        await connection.rollback()
        with pytest.raises(SecretNotFoundError):
            await store.get(ref, binding)

    with pytest.raises(SecretNotFoundError):
        await get(engine, keyring, ref, binding)


async def test_a_connection_closed_without_commit_leaves_no_secret(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()

    async with engine.connect() as connection:
        ref = await AesGcmSecretStore(connection, keyring, SteppingClock()).put(
            binding, make_data()
        )

    with pytest.raises(SecretNotFoundError):
        await get(engine, keyring, ref, binding)


# ---------------------------------------------------------------------------------------------
# Tampering: always SecretUnreadableError, never garbage
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 5, -1], ids=["first byte", "middle", "last byte (tag)"])
async def test_a_flipped_bit_in_the_ciphertext_makes_the_secret_unreadable(
    engine: AsyncEngine, index: int
) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    ref = await put(engine, keyring, binding)
    ciphertext = (await raw_row(engine, ref))["ciphertext"]

    await change_row(engine, ref, ciphertext=flip_bit(ciphertext, index))

    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref, binding)


async def test_a_flipped_bit_in_the_nonce_makes_the_secret_unreadable(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    ref = await put(engine, keyring, binding)
    nonce = (await raw_row(engine, ref))["nonce"]

    await change_row(engine, ref, nonce=flip_bit(nonce, 11))

    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref, binding)


async def test_a_nonce_of_the_wrong_length_makes_the_secret_unreadable(
    engine: AsyncEngine,
) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    ref = await put(engine, keyring, binding)

    await change_row(engine, ref, nonce=b"short")

    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref, binding)


async def swap_sealed(engine: AsyncEngine, a: SecretRef, b: SecretRef) -> None:
    row_a, row_b = await raw_row(engine, a), await raw_row(engine, b)
    columns = ("key_id", "nonce", "ciphertext")
    await change_row(engine, a, **{c: row_b[c] for c in columns})
    await change_row(engine, b, **{c: row_a[c] for c in columns})


async def test_a_ciphertext_moved_to_another_credential_does_not_decrypt(
    engine: AsyncEngine,
) -> None:
    keyring = make_keyring("old")
    first, second = make_binding(), make_binding()
    ref_first = await put(engine, keyring, first, make_data(token="first"))
    ref_second = await put(engine, keyring, second, make_data(token="second"))

    await swap_sealed(engine, ref_first, ref_second)

    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref_first, first)
    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref_second, second)


async def test_a_ciphertext_moved_to_another_owner_does_not_decrypt(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    credential_id = CredentialId(uuid.uuid4())  # the same credential id: only the owner differs
    mine, theirs = (
        make_binding(credential_id=credential_id),
        make_binding(owner_id=OTHER, credential_id=credential_id),
    )
    ref_mine = await put(engine, keyring, mine, make_data(token="mine"))
    ref_theirs = await put(engine, keyring, theirs, make_data(token="theirs"))

    await swap_sealed(engine, ref_mine, ref_theirs)

    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref_mine, mine)
    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref_theirs, theirs)


async def test_a_binding_rewritten_in_the_row_does_not_make_it_readable_to_another_owner(
    engine: AsyncEngine,
) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    ref = await put(engine, keyring, binding)
    thief = make_binding(owner_id=OTHER, credential_id=binding.credential_id)

    await change_row(engine, ref, owner_id=OTHER)

    with pytest.raises(SecretUnreadableError):
        await get(engine, keyring, ref, thief)


async def test_reading_with_another_binding_is_unreadable(engine: AsyncEngine) -> None:
    keyring = make_keyring("old")
    binding = make_binding()
    ref = await put(engine, keyring, binding)

    for other in (
        make_binding(),
        make_binding(owner_id=OTHER, credential_id=binding.credential_id),
    ):
        with pytest.raises(SecretUnreadableError):
            await get(engine, keyring, ref, other)


@pytest.mark.parametrize("key_id", ["new", "missing"], ids=["another key", "an unknown key"])
async def test_a_changed_key_id_makes_the_secret_unreadable(
    engine: AsyncEngine, key_id: str
) -> None:
    keyring = make_keyring("old", "new")
    binding = make_binding()
    ref = await put(engine, keyring, binding)

    await change_row(engine, ref, key_id=key_id)

    with pytest.raises(SecretUnreadableError) as caught:
        await get(engine, keyring, ref, binding)
    assert type(caught.value) is SecretUnreadableError  # the caller is not told which key


# ---------------------------------------------------------------------------------------------
# Rotation
# ---------------------------------------------------------------------------------------------


async def test_secrets_under_an_old_key_still_read_once_a_new_first_key_is_added(
    engine: AsyncEngine,
) -> None:
    binding = make_binding()
    old_ref = await put(engine, make_keyring("old"), binding, make_data(token="old"))
    rotated = make_keyring("new", "old")

    new_ref = await put(engine, rotated, binding, make_data(token="new"))

    assert (await raw_row(engine, new_ref))["key_id"] == "new"
    assert (await get(engine, rotated, old_ref, binding)).values == {"token": "old"}
    assert (await get(engine, rotated, new_ref, binding)).values == {"token": "new"}


async def test_reencrypt_moves_every_row_to_the_first_key_and_counts_them(
    engine: AsyncEngine,
) -> None:
    old = make_keyring("old")
    written = {make_binding(): f"value-{i}" for i in range(5)}
    refs = {
        binding: await put(engine, old, binding, make_data(token=value))
        for binding, value in written.items()
    }
    rotated = make_keyring("new", "old")
    already_new = await put(engine, rotated, make_binding())
    nonces_before = {ref: (await raw_row(engine, ref))["nonce"] for ref in refs.values()}

    moved = await reencrypt(engine, rotated, batch_size=2)

    assert moved == 5
    assert await rows_per_key(engine) == {"new": 6}
    for ref, nonce in nonces_before.items():
        assert (await raw_row(engine, ref))["nonce"] != nonce
    assert (await raw_row(engine, already_new))["key_id"] == "new"
    assert await reencrypt(engine, rotated) == 0


async def test_after_reencrypt_the_old_key_can_be_removed(engine: AsyncEngine) -> None:
    written = {make_binding(): f"value-{i}" for i in range(3)}
    refs = {}
    for binding, value in written.items():
        refs[binding] = await put(engine, make_keyring("old"), binding, make_data(token=value))
    await reencrypt(engine, make_keyring("new", "old"))

    only_new = make_keyring("new")

    for binding, value in written.items():
        assert (await get(engine, only_new, refs[binding], binding)).values == {"token": value}


async def test_without_reencrypt_removing_the_old_key_makes_its_secrets_unreadable(
    engine: AsyncEngine,
) -> None:
    binding = make_binding()
    ref = await put(engine, make_keyring("old"), binding)

    with pytest.raises(SecretUnreadableError):
        await get(engine, make_keyring("new"), ref, binding)


async def test_reencrypt_stops_naming_the_key_id_missing_from_the_keyring(
    engine: AsyncEngine,
) -> None:
    await put(engine, make_keyring("old"), make_binding())
    keyring = make_keyring("new")

    with pytest.raises(UnknownKeyError) as caught:
        await reencrypt(engine, keyring)

    assert caught.value.key_id == "old"
    assert "'old'" in str(caught.value)
    for key in KEYS.values():
        assert base64.b64encode(key).decode() not in str(caught.value)
    assert await rows_per_key(engine) == {"old": 1}


async def test_reencrypt_stops_at_a_tampered_row_naming_the_row(engine: AsyncEngine) -> None:
    ref = await put(engine, make_keyring("old"), make_binding())
    ciphertext = (await raw_row(engine, ref))["ciphertext"]
    await change_row(engine, ref, ciphertext=flip_bit(ciphertext, 0))

    with pytest.raises(SecretUnreadableError) as caught:
        await reencrypt(engine, make_keyring("new", "old"))

    assert str(row_id(ref)) in str(caught.value)
    assert await rows_per_key(engine) == {"old": 1}


@pytest.mark.postgres
async def test_reencrypt_on_postgres_skips_rows_another_transaction_holds(
    postgres_url: str,
) -> None:
    await upgrade(postgres_url)
    engine = create_engine(postgres_url)
    try:
        refs = [await put(engine, make_keyring("old"), make_binding()) for _ in range(3)]
        rotated = make_keyring("new", "old")
        async with engine.connect() as holder:
            await holder.execute(
                select(credential_secrets.c.id)
                .where(credential_secrets.c.id == row_id(refs[0]))
                .with_for_update()
            )

            moved = await asyncio.wait_for(reencrypt(engine, rotated), timeout=10)

            assert moved == 2
            await holder.rollback()
        assert await reencrypt(engine, rotated) == 1
        assert await rows_per_key(engine) == {"new": 3}
    finally:
        await engine.dispose()
