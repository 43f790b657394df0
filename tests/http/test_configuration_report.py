"""`flowbuilder config`'s table of defaults stays the settings' own: no variable missing, no
default that differs from what the settings do without it."""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

import pytest

from flowbuilder_adapters.settings import Mode, SettingsError, load_settings
from flowbuilder_http.configuration import DEFAULTS, SHOWN, load_env_file, report

COMPLETE = {
    "CLERK_FRONTEND_URL": "https://clerk.example.test",
    "WORKFLOW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/q",
    "IDEMPOTENCY_HMAC_KEY": base64.b64encode(os.urandom(32)).decode(),
    "SECRETS_PREFIX": "flowbuilder/test/",
}


class Recording(dict[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(name)
        return super().get(name, default)

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return super().__getitem__(name)


def test_the_report_knows_exactly_the_variables_the_settings_read() -> None:
    read: set[str] = set()
    for mode in Mode:
        for values in ({}, COMPLETE, {"USE_DB_SECRETS": "true"}):
            environment = Recording(values)
            with contextlib.suppress(SettingsError):
                load_settings(environment, mode)
            read |= environment.read

    assert read == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(n for n, v in DEFAULTS.items() if v is not None))
def test_each_default_the_report_shows_is_the_one_the_settings_use(name: str) -> None:
    implicit = load_settings(COMPLETE, Mode.SERVE)

    explicit = load_settings({**COMPLETE, name: str(DEFAULTS[name])}, Mode.SERVE)

    assert explicit == implicit


def test_a_variable_of_the_environment_is_not_replaced_by_the_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("A_SETTING=from-file\nANOTHER=from-file\nEMPTY_HERE\n")
    environ = {"A_SETTING": "from-environment"}

    taken = load_env_file(environ, env_file)

    assert environ == {"A_SETTING": "from-environment", "ANOTHER": "from-file"}
    assert taken == {"ANOTHER"}


def test_secrets_are_masked_in_the_report() -> None:
    secrets = {name: f"canary-{name}" for name in set(DEFAULTS) - SHOWN}

    lines, _ = report({**COMPLETE, **secrets}, frozenset(), Mode.SERVE)

    shown = " ".join(line.value for line in lines)
    assert "canary" not in shown
    assert {"DB_PASSWORD", "CLERK_SECRET_KEY", "SECRETS_ENCRYPTION_KEY"} <= set(DEFAULTS) - SHOWN


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "postgresql://app:canary@db:5432/flow?ssl=require",
            "postgresql://app:****@db:5432/flow?ssl=require",
        ),
        (
            "postgresql://db/flow?user=app&password=canary",
            "postgresql://db/flow?user=app&password=****",
        ),
        ("sqlite+aiosqlite:///data/flow.db", "sqlite+aiosqlite:///data/flow.db"),
        ("canary", "****"),
    ],
)
def test_the_database_url_is_shown_without_its_password(url: str, shown: str) -> None:
    lines, _ = report({"DATABASE_URL": url}, frozenset(), Mode.MIGRATE)

    (line,) = (line for line in lines if line.name == "DATABASE_URL")
    assert line.value == shown
