"""`load_settings`: what each mode requires, and the settings that fail closed (the secrets
prefix, Clerk's URLs and allowlists, embedded mode next to production settings)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from flowbuilder_adapters.settings import (
    CLERK_BACKEND_JWKS_URL,
    Mode,
    Settings,
    SettingsError,
    is_loopback_host,
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
        "IDEMPOTENCY_HMAC_KEY": base64.b64encode(bytes(range(32))).decode(),
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


# --- Clerk --------------------------------------------------------------------------------------


def test_serve_needs_the_frontend_url_since_every_tokens_issuer_is_checked() -> None:
    env = make_env(
        CLERK_FRONTEND_URL=None, CLERK_JWKS_URL=CLERK_BACKEND_JWKS_URL, CLERK_SECRET_KEY="sk_x"
    )

    found = problems(env)

    assert len(found) == 1
    assert found[0].startswith("CLERK_FRONTEND_URL: required")


def test_a_worker_verifies_no_tokens_and_needs_no_clerk_setting() -> None:
    settings = loaded(make_env(CLERK_FRONTEND_URL=None), Mode.WORKER)

    assert settings.clerk_frontend_url is None


@pytest.mark.parametrize("name", ["CLERK_FRONTEND_URL", "CLERK_JWKS_URL"])
@pytest.mark.parametrize(
    "url", ["http://clerk.flowbuilder.test", "http://10.0.0.5/jwks", "http://127.0.0.1.nip.io/"]
)
def test_a_clerk_url_in_the_clear_off_loopback_is_refused(name: str, url: str) -> None:
    found = problems(make_env(**{name: url}))

    assert found == [f"{name}: must be an https URL (http only on a loopback host)"]


@pytest.mark.parametrize(
    "url",
    [
        "https://clerk.flowbuilder.test",
        "http://127.0.0.1:8123",
        "http://127.9.9.9:8123",
        "http://localhost:8123",
        "http://[::1]:8123",
    ],
)
def test_a_clerk_url_is_https_or_on_loopback(url: str) -> None:
    settings = loaded(make_env(CLERK_FRONTEND_URL=url, CLERK_JWKS_URL=url + "/keys"))

    assert (settings.clerk_frontend_url, settings.jwks_url) == (url, url + "/keys")


@pytest.mark.parametrize("name", ["CLERK_AUTHORIZED_PARTIES", "CLERK_AUDIENCE"])
@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_an_allowlist_set_to_nothing_is_an_error_not_no_check(name: str, value: str) -> None:
    found = problems(make_env(**{name: value}))

    assert len(found) == 1
    assert found[0].startswith(f"{name}: is set but names nothing")


def test_allowlists_are_trimmed_comma_separated_sets() -> None:
    env = make_env(
        CLERK_AUTHORIZED_PARTIES=" https://app.example , https://admin.example,",
        CLERK_AUDIENCE="flowbuilder",
    )

    settings = loaded(env)

    assert settings.clerk_authorized_parties == {"https://app.example", "https://admin.example"}
    assert settings.clerk_audience == {"flowbuilder"}


def test_unset_allowlists_check_nothing() -> None:
    settings = loaded(make_env())

    assert (settings.clerk_authorized_parties, settings.clerk_audience) == (None, None)


def test_the_secret_key_is_for_clerks_backend_api_only() -> None:
    backend = loaded(make_env(CLERK_JWKS_URL=CLERK_BACKEND_JWKS_URL, CLERK_SECRET_KEY="sk_x"))
    frontend = loaded(make_env(CLERK_SECRET_KEY="sk_x"))

    assert backend.jwks_uses_backend_api
    assert not frontend.jwks_uses_backend_api
    assert frontend.jwks_url == CLERK + "/.well-known/jwks.json"


# --- embedded mode ------------------------------------------------------------------------------


def test_embedded_mode_needs_no_setting_at_all() -> None:
    settings = loaded({}, Mode.EMBEDDED)

    assert settings.embedded
    assert settings.database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLERK_FRONTEND_URL", CLERK),
        ("CLERK_JWKS_URL", CLERK + "/.well-known/jwks.json"),
        ("CLERK_SECRET_KEY", "sk_live_x"),
        ("CLERK_AUTHORIZED_PARTIES", "https://app.example"),
        ("CLERK_AUDIENCE", "flowbuilder"),
        ("DATABASE_URL", "postgresql://u@db.internal/flowbuilder"),
        ("DB_HOST", "db.internal"),
        ("DB_PASSWORD", "hunter2"),
        ("WORKFLOW_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/0/flowbuilder"),
        ("SQS_ENDPOINT_URL", "https://sqs.us-east-1.amazonaws.com"),
    ],
)
def test_embedded_mode_refuses_to_start_next_to_a_production_setting(name: str, value: str) -> None:
    found = problems({name: value}, Mode.EMBEDDED)

    assert len(found) == 1
    assert found[0].startswith(f"{name}: ")
    assert value not in found[0]


def test_embedded_mode_works_on_one_api_request_at_once_unless_told_more() -> None:
    assert loaded({}, Mode.EMBEDDED).max_concurrent_api_requests == 1
    told = loaded({"MAX_CONCURRENT_API_REQUESTS": "8"}, Mode.EMBEDDED)
    assert told.max_concurrent_api_requests == 8


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_an_api_request_bound_that_is_not_a_positive_integer_stops_start_up(value: str) -> None:
    found = problems({"MAX_CONCURRENT_API_REQUESTS": value}, Mode.EMBEDDED)

    assert len(found) == 1
    assert found[0].startswith("MAX_CONCURRENT_API_REQUESTS: ")


def test_embedded_mode_may_keep_its_sqlite_database_elsewhere(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'elsewhere.db'}"

    settings = loaded({"DATABASE_URL": url}, Mode.EMBEDDED)

    assert settings.database_url == url


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),  # noqa: S104 - every interface, the point of the case
        ("::", False),
        ("192.168.1.10", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_loopback_hosts_are_told_from_the_others(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


# --- WORKER_POLL_S ----------------------------------------------------------------------------


def test_a_worker_long_polls_ten_seconds_unless_told_otherwise() -> None:
    assert loaded(make_env(), Mode.WORKER).worker_poll_s == 10
    assert loaded(make_env(WORKER_POLL_S="1"), Mode.WORKER).worker_poll_s == 1


@pytest.mark.parametrize("value", ["0", "21", "ten", "1.5"])
def test_a_long_poll_outside_what_sqs_allows_stops_start_up_naming_the_setting(value: str) -> None:
    found = problems(make_env(WORKER_POLL_S=value), Mode.WORKER)

    assert len(found) == 1
    assert found[0].startswith("WORKER_POLL_S: ")
