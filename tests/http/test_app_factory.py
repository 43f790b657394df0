"""The ASGI server's factory, `app_from_environment`: embedded mode (the local token issuer) only
as `flowbuilder serve --embedded` starts it, on loopback, with no production setting."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar

from flowbuilder_adapters.settings import BIND_HOST_VARIABLE, SettingsError
from flowbuilder_http.app import app_from_environment

from support.processes import clean_env


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No FlowBuilder setting from the developer's shell; a directory of the test's own; and
    the root logger as it was, since the factory configures logging for the process."""
    for name in set(os.environ) - set(clean_env()):
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # Keys of its own, so the embedded wiring reads no key file.
    monkeypatch.setenv("SECRETS_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("IDEMPOTENCY_HMAC_KEY", base64.b64encode(os.urandom(32)).decode())
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def embedded(monkeypatch: pytest.MonkeyPatch, host: str | None, **settings: str) -> None:
    """The environment `flowbuilder serve --embedded --host <host>` leaves for the factory."""
    monkeypatch.setenv("FLOWBUILDER_EMBEDDED", "1")
    if host is not None:
        monkeypatch.setenv(BIND_HOST_VARIABLE, host)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def refusal() -> list[str]:
    with pytest.raises(SettingsError) as raised:
        app_from_environment()
    return raised.value.problems


def test_embedded_mode_on_loopback_with_no_production_setting_builds_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    embedded(monkeypatch, "127.0.0.1")

    app = app_from_environment()

    assert isinstance(app, Litestar)


@pytest.mark.parametrize("host", [None, "", "0.0.0.0", "192.0.2.1", "::"])  # noqa: S104
def test_embedded_mode_not_bound_to_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str | None
) -> None:
    embedded(monkeypatch, host)

    problems = refusal()

    assert len(problems) == 1
    assert problems[0].startswith("--host: embedded mode serves on loopback only")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLERK_FRONTEND_URL", "https://clerk.flowbuilder.test"),
        ("DATABASE_URL", "postgresql+asyncpg://u@db.internal:5432/flowbuilder"),
        ("DB_HOST", "db.internal"),
        ("WORKFLOW_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/0/flowbuilder"),
    ],
)
def test_embedded_mode_next_to_a_production_setting_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    embedded(monkeypatch, "127.0.0.1", **{name: value})

    problems = refusal()

    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: ")
