"""Where the configuration comes from: the environment, a `.env` file under it, and defaults;
and `flowbuilder config`, which shows the outcome without showing a secret."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from dotenv import dotenv_values

from flowbuilder_adapters.settings import Mode, Settings, SettingsError, load_settings
from flowbuilder_adapters.wiring import hide_everywhere

ENV_FILE = Path(".env")

DEFAULTS: Mapping[str, str | None] = {
    "DATABASE_URL": None,
    "DB_HOST": "localhost",
    "DB_PORT": "5433",
    "DB_NAME": "flow-builder",
    "DB_USER": "root",
    "DB_PASSWORD": "rootpassword",
    "DB_SSL_MODE": "require",
    "CLERK_SECRET_KEY": None,
    "CLERK_FRONTEND_URL": None,
    "CLERK_JWKS_URL": None,
    "CLERK_AUTHORIZED_PARTIES": None,
    "CLERK_AUDIENCE": None,
    "WORKFLOW_QUEUE_URL": None,
    "SQS_ENDPOINT_URL": None,
    "AWS_REGION": "us-east-1",
    "USE_DB_SECRETS": "false",
    "SECRETS_ENCRYPTION_KEY": None,
    "SECRETS_PREFIX": None,
    "HTTP_NODE_ALLOW_PRIVATE_NETWORK": "false",
    "EXECUTION_RATE_PER_SECOND": "20",
    "EXECUTION_RATE_BURST": "100",
    "RUN_TIMEOUT_S": "900",
    "MAX_RUNNING_PER_USER": "10",
    "MAX_QUEUED_EXECUTIONS": "10000",
    "MAX_CONCURRENT_API_REQUESTS": "1",
    "MAX_WORKFLOWS_PER_USER": "1000",
    "MAX_CREDENTIALS_PER_USER": "500",
    "VERSIONS_KEPT_PER_WORKFLOW": "100",
    "WRITE_RATE_PER_SECOND": "10",
    "WRITE_RATE_BURST": "100",
    "WEBHOOK_WAIT_S": "30",
    "WEBHOOK_RATE_PER_SECOND": "50",
    "WEBHOOK_RATE_BURST": "100",
    "MAX_EVENT_STREAMS_PER_USER": "10",
    "MAX_NODE_OUTPUT_BYTES": "1048576",
    "MAX_RUN_CONTEXT_BYTES": "8388608",
    "EXPRESSION_TIMEOUT_S": "2",
    "MAX_FOR_EACH_ITEMS": "1000",
    "IDEMPOTENCY_HMAC_KEY": None,
    "LOG_FORMAT": None,  # json for serve and worker, text otherwise (see _default_of)
    "METRICS_ENABLED": "true",
    "METRICS_HOST": "127.0.0.1",
    "METRICS_PORT": "9100",
    "SHUTDOWN_GRACE_S": "25",
    "WORKER_POLL_S": "10",
    "SCHEDULE_TICK_S": "1",
    "SCHEDULE_BATCH": "100",
    "SCHEDULE_MIN_INTERVAL_S": "60",
    "SCHEDULE_CATCHUP_S": "3600",
}
"""Every variable the settings read, with the default it stands for (None: unset). A test
checks this against `load_settings`, so a new setting cannot be left out."""

SHOWN: frozenset[str] = frozenset(DEFAULTS) - {
    "DATABASE_URL",
    "DB_PASSWORD",
    "CLERK_SECRET_KEY",
    "SECRETS_ENCRYPTION_KEY",
    "IDEMPOTENCY_HMAC_KEY",
}
"""The variables whose values `flowbuilder config` prints; the others are secrets, masked.
Secret unless listed: a setting added later stays masked until someone decides otherwise."""

_SECRET_NAME = re.compile(r"pass|secret|key|token|cred", re.IGNORECASE)


def load_env_file(environ: MutableMapping[str, str], path: Path = ENV_FILE) -> frozenset[str]:
    """Put the variables of `path` (a `.env` file, when there is one) into `environ`, except
    those `environ` already has: the real environment wins. The names it set."""
    if not path.is_file():
        return frozenset()
    taken = {
        name: value
        for name, value in dotenv_values(path).items()
        if value is not None and name not in environ
    }
    environ.update(taken)
    return frozenset(taken)


def keep_secrets_out_of_logs(environ: Mapping[str, str]) -> None:
    """No log line of this process will show a configured secret: the values of the secret
    variables, the keys of the keyring, the database URL's password."""
    values: list[str] = []
    for name in sorted(set(DEFAULTS) - SHOWN):
        value = environ.get(name, "").strip()
        if not value:
            continue
        if name == "DATABASE_URL":
            password = urlsplit(value).password
            values += [] if password is None else [password, unquote(password)]
            continue
        values.append(value)
        if name == "SECRETS_ENCRYPTION_KEY":  # each key alone too, never its short id
            values += [entry.rpartition(":")[2].strip() for entry in value.split(",")]
    hide_everywhere(values)


@dataclass(frozen=True, slots=True)
class Line:
    """One variable as `flowbuilder config` prints it."""

    name: str
    value: str
    source: str


def report(
    environ: Mapping[str, str], from_file: frozenset[str], mode: Mode
) -> tuple[list[Line], SettingsError | None]:
    """Every setting of `mode` with its value (secrets masked) and where it came from, and
    the error that would stop such a process, if any."""
    recording = _Recording(environ)
    error: SettingsError | None = None
    try:
        settings: Settings | None = load_settings(recording, mode)
    except SettingsError as exc:
        settings, error = None, exc
    lines = []
    for name in dict.fromkeys([*DEFAULTS, *recording.read]):
        if name in environ:
            source = ".env" if name in from_file else "environment"
            value = _shown(name, environ[name])
        else:
            source = "default"
            value = _default_of(name, settings, mode)
        lines.append(Line(name, value, source))
    return lines, error


def render(lines: list[Line]) -> str:
    width = max(len(line.name) for line in lines)
    value_width = min(max(len(line.value) for line in lines), 48)
    return "\n".join(
        f"{line.name:<{width}}  {line.value:<{value_width}}  {line.source}" for line in lines
    )


def _shown(name: str, value: str) -> str:
    if name in SHOWN:
        return value or "(empty)"
    if name == "DATABASE_URL":  # where it points is useful to see, its password is not
        return _masked_url(value)
    return "****" if value else "(empty)"


def _masked_url(value: str) -> str:
    """`value` with its password, and every query value whose name suggests a secret, masked;
    anything that is not a URL with a scheme, masked whole."""
    parts = urlsplit(value)
    if not parts.scheme or "://" not in value:
        return "****"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:****@{host}"
    query = urlencode(
        [
            (key, "****" if _SECRET_NAME.search(key) else item)
            for key, item in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def _default_of(name: str, settings: Settings | None, mode: Mode) -> str:
    if name == "LOG_FORMAT":
        return "json" if mode in (Mode.SERVE, Mode.WORKER) else "text"
    if name == "DATABASE_URL" and mode is Mode.EMBEDDED and settings is not None:
        return _shown(name, settings.database_url)
    default = DEFAULTS.get(name)
    return "(unset)" if default is None else _shown(name, default)


class _Recording(Mapping[str, str]):
    """A view of the environment that remembers, in order, every name looked up in it."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.read: list[str] = []

    def __getitem__(self, name: str) -> str:
        if name not in self.read:
            self.read.append(name)
        return self._environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)
