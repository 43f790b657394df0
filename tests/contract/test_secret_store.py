"""The SecretStore contract, run against every adapter: memory, AES-GCM in SQLite and in
Postgres, and Secrets Manager (a local moto server).

Each adapter's store comes out of a real dishka container, wired as the application wires it,
inside a `Harness`: the store, the clock it dates secrets with, and the scope's `commit` (the
database-backed store writes in the unit of work's transaction; the others write at once)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dishka import Provider, make_async_container

from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import (
    CoreProvider,
    DatabaseSecretsProvider,
    MemoryProvider,
    OutboxProvider,
    QueueProvider,
    SecretsManagerProvider,
    SqlProvider,
)
from flowbuilder_core.credentials.errors import SecretNotFoundError, SecretUnreadableError
from flowbuilder_core.credentials.model import CredentialId, SecretBinding, SecretData, SecretRef
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.uow import UnitOfWork

from support.aws_fixtures import AWS_REGION

OWNER = UserId("user_owner")
OTHER_OWNER = UserId("user_other")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# Every secret value in this suite contains it; no repr, error or log line may.
CANARY = "canary-7c1e5d0a-secret-value"


class SteppingClock:
    """Each reading is one millisecond after the previous one."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now


async def _nothing_to_commit() -> None:
    return None


@dataclass
class Harness:
    store: SecretStore
    clock: SteppingClock
    commit: Callable[[], Awaitable[None]] = _nothing_to_commit


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------


@asynccontextmanager
async def container_harness(clock: SteppingClock, *providers: Provider) -> AsyncIterator[Harness]:
    """The store as the application wires it: out of a dishka container, in a request scope."""
    container = make_async_container(CoreProvider(clock=clock), *providers)
    try:
        async with container() as scope:
            store, uow = await scope.get(SecretStore), await scope.get(UnitOfWork)
            yield Harness(store, clock, uow.commit)
    finally:
        await container.close()


def memory_harness(clock: SteppingClock) -> AbstractAsyncContextManager[Harness]:
    return container_harness(clock, MemoryProvider())


@asynccontextmanager
async def aesgcm_harness(url: str, clock: SteppingClock) -> AsyncIterator[Harness]:
    await upgrade(url)
    keyring, _ = Keyring.generate()
    extras = [QueueProvider(None), OutboxProvider(20, 100)]
    async with container_harness(
        clock, SqlProvider(url), DatabaseSecretsProvider(keyring), *extras
    ) as h:
        yield h


def secretsmanager_harness(clock: SteppingClock) -> AbstractAsyncContextManager[Harness]:
    # The server lives for the whole session: a prefix of its own keeps this test's secrets
    # apart from every other test's.
    prefix = f"flowbuilder-test/{uuid.uuid4().hex}/"
    return container_harness(
        clock, MemoryProvider(), SecretsManagerProvider(AWS_REGION, prefix=prefix)
    )


@pytest.fixture(
    params=[
        "memory",
        "aesgcm-sqlite",
        pytest.param("aesgcm-postgres", marks=pytest.mark.postgres),
        "secretsmanager",
    ]
)
def make_harness(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], AbstractAsyncContextManager[Harness]]:
    """The adapter's factory. Resolves the servers it needs here, outside the event loop."""
    name: str = request.param
    clock = SteppingClock(T0)
    if name == "memory":
        return lambda: memory_harness(clock)
    if name == "aesgcm-sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'secrets.db'}"
        return lambda: aesgcm_harness(url, clock)
    if name == "aesgcm-postgres":
        url = request.getfixturevalue("postgres_url")
        return lambda: aesgcm_harness(url, clock)
    request.getfixturevalue("moto_endpoint")
    return lambda: secretsmanager_harness(clock)


@pytest.fixture
async def harness(
    make_harness: Callable[[], AbstractAsyncContextManager[Harness]],
) -> AsyncIterator[Harness]:
    async with make_harness() as harness:
        yield harness


@pytest.fixture
def store(harness: Harness) -> SecretStore:
    return harness.store


# ---------------------------------------------------------------------------------------------
# Factories and helpers
# ---------------------------------------------------------------------------------------------


def make_binding(**overrides: object) -> SecretBinding:
    fields: dict[str, object] = {
        "owner_id": OWNER,
        "credential_id": CredentialId(uuid.UUID("5e1f0000-0000-4000-8000-000000000001")),
    }
    fields.update(overrides)
    return SecretBinding(**fields)  # type: ignore[arg-type]


def make_data(**overrides: str) -> SecretData:
    values = {
        "username": "alice",
        "password": f'{CANARY}-pässwörd ✓ "quoted" \\ slash',
        "empty": "",
    }
    values.update(overrides)
    return SecretData(values)


def never_issued_refs() -> dict[str, SecretRef]:
    """References no store issued, each shaped like one adapter's references, by name."""
    return {
        "empty": SecretRef(""),
        "text": SecretRef("never-issued"),
        "uuid": SecretRef(str(uuid.uuid4())),
        "aesgcm-like": SecretRef(f"db:{uuid.uuid4()}"),
        "memory-like": SecretRef(f"memory:{uuid.uuid4()}"),
        "secretsmanager-like": SecretRef(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
            f"flowbuilder/credentials/user_owner/{uuid.uuid4()}/{uuid.uuid4()}-AbCdEf"
        ),
    }


def error_texts(error: BaseException) -> list[str]:
    """str and repr of the error and of every error chained to it."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *map(repr, current.args)]
        current = current.__cause__ or current.__context__
    return texts


# ---------------------------------------------------------------------------------------------
# put / get
# ---------------------------------------------------------------------------------------------


async def test_a_stored_secret_reads_back_with_its_binding(harness: Harness) -> None:
    ref = await harness.store.put(make_binding(), make_data())
    await harness.commit()

    data = await harness.store.get(ref, make_binding())

    assert dict(data.values) == dict(make_data().values)


async def test_each_put_stores_a_new_secret_and_both_read_back(harness: Harness) -> None:
    first = await harness.store.put(make_binding(), make_data(password=f"{CANARY}-one"))
    second = await harness.store.put(make_binding(), make_data(password=f"{CANARY}-two"))
    await harness.commit()

    assert first != second
    assert (await harness.store.get(first, make_binding())).values["password"] == f"{CANARY}-one"
    assert (await harness.store.get(second, make_binding())).values["password"] == f"{CANARY}-two"


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(
            {"credential_id": CredentialId(uuid.UUID("5e1f0000-0000-4000-8000-000000000002"))},
            id="other-credential",
        ),
        pytest.param({"owner_id": OTHER_OWNER}, id="other-owner"),
    ],
)
async def test_a_secret_does_not_read_back_with_another_binding(
    harness: Harness, other: dict[str, object]
) -> None:
    ref = await harness.store.put(make_binding(), make_data())
    await harness.commit()

    with pytest.raises(SecretUnreadableError):
        await harness.store.get(ref, make_binding(**other))


@pytest.mark.parametrize("kind", sorted(never_issued_refs()))
async def test_a_never_issued_reference_is_not_found(store: SecretStore, kind: str) -> None:
    with pytest.raises(SecretNotFoundError):
        await store.get(never_issued_refs()[kind], make_binding())


# ---------------------------------------------------------------------------------------------
# delete
# ---------------------------------------------------------------------------------------------


async def test_a_deleted_secret_is_not_found(harness: Harness) -> None:
    ref = await harness.store.put(make_binding(), make_data())
    await harness.commit()

    await harness.store.delete(ref)
    await harness.commit()

    with pytest.raises(SecretNotFoundError):
        await harness.store.get(ref, make_binding())


async def test_delete_leaves_the_other_secrets_alone(harness: Harness) -> None:
    gone = await harness.store.put(make_binding(), make_data())
    kept = await harness.store.put(make_binding(), make_data(password=f"{CANARY}-kept"))
    await harness.commit()

    await harness.store.delete(gone)
    await harness.commit()

    assert (await harness.store.get(kept, make_binding())).values["password"] == f"{CANARY}-kept"


async def test_delete_is_idempotent(harness: Harness) -> None:
    ref = await harness.store.put(make_binding(), make_data())
    await harness.commit()

    await harness.store.delete(ref)
    await harness.store.delete(ref)
    for never in never_issued_refs().values():
        await harness.store.delete(never)
    await harness.commit()

    with pytest.raises(SecretNotFoundError):
        await harness.store.get(ref, make_binding())


# ---------------------------------------------------------------------------------------------
# unreferenced
# ---------------------------------------------------------------------------------------------


async def test_unreferenced_lists_exactly_the_older_secrets_no_credential_references(
    harness: Harness,
) -> None:
    store = harness.store
    orphan = await store.put(make_binding(), make_data())
    referenced = await store.put(make_binding(), make_data())
    other_owner_orphan = await store.put(make_binding(owner_id=OTHER_OWNER), make_data())
    deleted = await store.put(make_binding(), make_data())
    await store.delete(deleted)
    before = harness.clock.now()
    await store.put(make_binding(), make_data())  # too recent: a write may still be under way
    await harness.commit()

    found = await store.unreferenced({referenced}, before)

    assert sorted(ref.value for ref in found) == sorted([orphan.value, other_owner_orphan.value])
    assert len(found) == 2


async def test_unreferenced_is_empty_when_every_older_secret_is_referenced(
    harness: Harness,
) -> None:
    refs = {await harness.store.put(make_binding(), make_data()) for _ in range(3)}
    await harness.commit()

    assert list(await harness.store.unreferenced(refs, harness.clock.now())) == []
    assert list(await harness.store.unreferenced(set(), T0)) == []


# ---------------------------------------------------------------------------------------------
# Secret values never show
# ---------------------------------------------------------------------------------------------


async def test_no_repr_error_or_log_line_shows_a_secret_value(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="flowbuilder_adapters")
    caplog.set_level(logging.DEBUG, logger="flowbuilder_core")
    store = harness.store
    ref = await store.put(make_binding(), make_data())
    deleted = await store.put(make_binding(), make_data())
    await harness.commit()
    await store.delete(deleted)
    await harness.commit()

    data = await store.get(ref, make_binding())
    errors: list[BaseException] = []
    attempts = [
        (ref, make_binding(owner_id=OTHER_OWNER)),
        (ref, make_binding(credential_id=CredentialId(uuid.uuid4()))),
        (deleted, make_binding()),
        *((never, make_binding()) for never in never_issued_refs().values()),
    ]
    for attempt_ref, binding in attempts:
        with pytest.raises((SecretNotFoundError, SecretUnreadableError)) as raised:
            await store.get(attempt_ref, binding)
        errors.append(raised.value)

    shown = [repr(store), str(store), repr(data), str(data), repr(ref)]
    shown += [text for error in errors for text in error_texts(error)]
    shown += [record.getMessage() for record in caplog.records]
    assert not [text for text in shown if CANARY in text]
