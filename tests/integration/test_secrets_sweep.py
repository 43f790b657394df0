"""`flowbuilder secrets sweep` with several deployments on one Secrets Manager endpoint (a local
moto server): each sweeps its own unreferenced secrets and nobody else's.

The sweep runs as the command runs it (`sweep_secrets` with settings from the environment),
each deployment with its own SQLite database, in which no credential references anything: to
the sweeping deployment every secret it can see is an orphan.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from flowbuilder_adapters.secrets.aws import SecretsManagerSecretStore, secrets_manager_client
from flowbuilder_adapters.settings import Mode, SettingsError, load_settings
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import sweep_secrets
from flowbuilder_core.credentials.model import CredentialId, SecretBinding, SecretData, SecretRef
from flowbuilder_core.shared.ids import UserId

from support.aws_fixtures import AWS_REGION

CANARY = "canary-sweep-5b0e-secret-value"


class FixedClock:
    """Dates the secrets two hours back: past the sweep's one hour of grace."""

    def now(self) -> datetime:
        return datetime.now(UTC) - timedelta(hours=2)


def make_binding() -> SecretBinding:
    return SecretBinding(UserId(f"user_{uuid.uuid4().hex[:8]}"), CredentialId(uuid.uuid4()))


@pytest.fixture
async def client(moto_endpoint: str) -> AsyncIterator[Any]:
    async with secrets_manager_client(aioboto3.Session(), AWS_REGION) as client:
        yield client


async def migrated_database(directory: Path, name: str) -> str:
    url = f"sqlite+aiosqlite:///{directory / name}.db"
    await upgrade(url)
    return url


async def put_secrets(
    client: Any, prefix: str, count: int
) -> list[tuple[SecretRef, SecretBinding]]:
    """`count` secrets written as the deployment under `prefix` writes them."""
    store = SecretsManagerSecretStore(client, prefix=prefix, clock=FixedClock())
    written = []
    for index in range(count):
        binding = make_binding()
        ref = await store.put(binding, SecretData({"token": f"{CANARY}-{index}"}))
        written.append((ref, binding))
    return written


async def test_sweeping_one_deployment_leaves_every_secret_of_the_others_readable(
    client: Any, tmp_path: Path
) -> None:
    root = f"flowbuilder-sweep/{uuid.uuid4().hex}/"
    staging, production = f"{root}staging/", f"{root}production/"
    # Shares staging's prefix as the start of its names: only the deployment tag tells them apart.
    staging_eu = f"{staging}eu/"
    ours = await put_secrets(client, staging, 3)
    others = {prefix: await put_secrets(client, prefix, 3) for prefix in (production, staging_eu)}
    env = {
        "DATABASE_URL": await migrated_database(tmp_path, "staging"),
        "SECRETS_PREFIX": staging,
        "AWS_REGION": AWS_REGION,
    }

    swept = await sweep_secrets(load_settings(env, Mode.MIGRATE))

    assert swept == len(ours)
    for prefix, written in others.items():
        store = SecretsManagerSecretStore(client, prefix=prefix)
        values = [(await store.get(ref, binding)).values["token"] for ref, binding in written]
        assert values == [f"{CANARY}-{index}" for index in range(3)], prefix
    for ref, _ in ours:
        described = await client.describe_secret(SecretId=ref.value)
        assert described.get("DeletedDate") is not None


async def test_a_swept_secret_stays_restorable_for_the_recovery_window(
    client: Any, tmp_path: Path
) -> None:
    prefix = f"flowbuilder-sweep/{uuid.uuid4().hex}/"
    [(ref, binding)] = await put_secrets(client, prefix, 1)
    env = {
        "DATABASE_URL": await migrated_database(tmp_path, "deployment"),
        "SECRETS_PREFIX": prefix,
        "AWS_REGION": AWS_REGION,
    }
    assert await sweep_secrets(load_settings(env, Mode.MIGRATE)) == 1

    await client.restore_secret(SecretId=ref.value)

    store = SecretsManagerSecretStore(client, prefix=prefix)
    assert (await store.get(ref, binding)).values["token"] == f"{CANARY}-0"


async def test_the_sweep_refuses_to_run_without_a_deployment_prefix(
    client: Any, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": await migrated_database(tmp_path, "unnamed"), "AWS_REGION": AWS_REGION}

    with pytest.raises(SettingsError) as raised:
        await sweep_secrets(load_settings(env, Mode.MIGRATE))

    assert [line.split(":")[0] for line in raised.value.problems] == ["SECRETS_PREFIX"]
