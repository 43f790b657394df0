"""`load_settings`: what each mode requires, and the settings that fail closed (the secrets
prefix)."""

from __future__ import annotations

import base64
import os

import pytest

from flowbuilder_adapters.settings import (
    Mode,
    Settings,
    SettingsError,
    load_settings,
)

CLERK = "https://clerk.flowbuilder.test"


def make_env(**overrides: str | None) -> dict[str, str]:
    """A complete `serve` environment (Secrets Manager for secrets); None removes a variable."""
    env: dict[str, str | None] = {
        "DATABASE_URL": "postgresql+asyncpg://u@db.internal:5432/flowbuilder",
        "CLERK_FRONTEND_URL": CLERK,
        "WORKFLOW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/flowbuilder",
        "SECRETS_PREFIX": "flowbuilder/production/",
        **overrides,
    }
    return {name: value for name, value in env.items() if value is not None}


def problems(env: dict[str, str], mode: Mode = Mode.SERVE) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load_settings(env, mode)
    return raised.value.problems


def loaded(env: dict[str, str], mode: Mode = Mode.SERVE) -> Settings:
    return load_settings(env, mode)


# --- SECRETS_PREFIX ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.SERVE, Mode.WORKER])
def test_secrets_in_secrets_manager_need_a_prefix_of_the_deployments_own(mode: Mode) -> None:
    env = make_env(SECRETS_PREFIX=None)

    found = problems(env, mode)

    assert len(found) == 1
    assert found[0].startswith("SECRETS_PREFIX: required")


def test_secrets_kept_in_the_database_need_no_prefix() -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    env = make_env(SECRETS_PREFIX=None, USE_DB_SECRETS="true", SECRETS_ENCRYPTION_KEY=key)

    settings = loaded(env)

    assert settings.secrets_prefix is None


def test_migrate_needs_no_prefix() -> None:
    settings = loaded(make_env(SECRETS_PREFIX=None), Mode.MIGRATE)

    assert settings.secrets_prefix is None


def test_a_prefix_without_a_trailing_slash_gets_one() -> None:
    settings = loaded(make_env(SECRETS_PREFIX="flowbuilder/staging"))

    assert settings.secrets_prefix == "flowbuilder/staging/"


@pytest.mark.parametrize("prefix", ["flowbuilder staging/", "flowbuilder/ünï/", "a" * 257])
def test_a_prefix_outside_the_secret_name_characters_is_refused(prefix: str) -> None:
    found = problems(make_env(SECRETS_PREFIX=prefix))

    assert len(found) == 1
    assert found[0].startswith("SECRETS_PREFIX: must be")
