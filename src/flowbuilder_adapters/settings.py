"""Settings from the environment, under the seed's variable names and defaults.

`load_settings` checks everything up front and raises SettingsError with one line per problem
naming the variable; no value is echoed, since some are secrets.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, urlsplit

from flowbuilder_adapters.secrets.keyring import Keyring, KeyringError
from flowbuilder_adapters.settings_schedules import ScheduleSettings, read_schedule_settings
from flowbuilder_core.executions.bounds import EngineLimits

EMBEDDED_DIR = Path(".flowbuilder")
EMBEDDED_ISSUER = "flowbuilder-embedded"
CLERK_BACKEND_JWKS_URL = "https://api.clerk.com/v1/jwks"
MIN_HMAC_KEY_BYTES = 32
LOG_FORMATS = ("json", "text")
# Set by `flowbuilder serve --embedded` for the app factory: the address it binds. Not read by
# `load_settings`, and not an operator's setting.
BIND_HOST_VARIABLE = "FLOWBUILDER_BIND_HOST"
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")
# Secrets Manager name characters (the store checks them again); at most 256, which is also
# the longest tag value, since the prefix is the deployment tag's value too.
_SECRETS_PREFIX = re.compile(r"[A-Za-z0-9/_+=.@-]{1,256}")
# What tells a production process from embedded mode: embedded mode refuses to start while any
# of these is set, so a production environment cannot end up behind the local token issuer.
_PRODUCTION_SETTINGS = (
    "CLERK_FRONTEND_URL",
    "CLERK_JWKS_URL",
    "CLERK_SECRET_KEY",
    "CLERK_AUTHORIZED_PARTIES",
    "CLERK_AUDIENCE",
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSL_MODE",
    "WORKFLOW_QUEUE_URL",
    "SQS_ENDPOINT_URL",
)


class Mode(StrEnum):
    """What the process is for: each needs a different part of the configuration."""

    SERVE = "serve"
    WORKER = "worker"
    EMBEDDED = "embedded"
    MIGRATE = "migrate"


class SettingsError(Exception):
    """One or more settings are missing or invalid; `str()` is one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class Settings:
    mode: Mode
    database_url: str = field(repr=False)
    clerk_secret_key: str | None = field(default=None, repr=False)
    clerk_frontend_url: str | None = None
    clerk_jwks_url: str | None = None
    clerk_authorized_parties: frozenset[str] | None = None
    clerk_audience: frozenset[str] | None = None
    workflow_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    use_db_secrets: bool = False
    keyring: Keyring | None = None
    secrets_prefix: str | None = None
    http_node_allow_private_network: bool = False
    execution_rate_per_second: int = 20
    execution_rate_burst: int = 100
    run_timeout_s: int = 900
    max_running_per_user: int = 10
    max_queued_executions: int = 10_000
    max_event_streams_per_user: int = 10
    max_workflows_per_user: int = 1000
    max_credentials_per_user: int = 500
    versions_kept_per_workflow: int = 100
    write_rate_per_second: int = 10
    write_rate_burst: int = 100
    webhook_wait_s: float = 30.0
    webhook_rate_per_second: int = 50
    webhook_rate_burst: int = 100
    idempotency_hmac_key: bytes | None = field(default=None, repr=False)
    log_format: str = "json"
    metrics_enabled: bool = True
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9100
    shutdown_grace_s: int = 25
    engine_limits: EngineLimits = field(default_factory=EngineLimits)
    schedules: ScheduleSettings = field(default_factory=ScheduleSettings)
    data_dir: Path = EMBEDDED_DIR

    @property
    def embedded(self) -> bool:
        return self.mode is Mode.EMBEDDED

    @property
    def secrets_in_database(self) -> bool:
        """Embedded mode always keeps secrets in its database, under a key of its own."""
        return self.use_db_secrets or self.embedded

    @property
    def jwks_url(self) -> str:
        """Where the token verifier fetches keys: the explicit URL, the frontend's well-known
        document, or Clerk's Backend API (authorized with the secret key)."""
        if self.clerk_jwks_url:
            return self.clerk_jwks_url
        if self.clerk_frontend_url:
            return self.clerk_frontend_url.rstrip("/") + "/.well-known/jwks.json"
        return CLERK_BACKEND_JWKS_URL

    @property
    def jwks_uses_backend_api(self) -> bool:
        """Whether the keys come from Clerk's Backend API, the one endpoint that is sent the
        secret key."""
        return self.jwks_url == CLERK_BACKEND_JWKS_URL


def load_settings(env: Mapping[str, str], mode: Mode) -> Settings:
    reader = _Reader(env)
    embedded = mode is Mode.EMBEDDED
    data_dir = EMBEDDED_DIR
    if embedded:
        reader.refuse_production_settings()
    database_url = reader.database_url(
        default_sqlite=(data_dir / "flowbuilder.db") if embedded else None
    )
    limits = EngineLimits()  # the defaults
    settings = Settings(
        mode=mode,
        database_url=database_url,
        clerk_secret_key=reader.text("CLERK_SECRET_KEY"),
        clerk_frontend_url=reader.clerk_url("CLERK_FRONTEND_URL"),
        clerk_jwks_url=reader.clerk_url("CLERK_JWKS_URL"),
        clerk_authorized_parties=reader.strict_comma_set("CLERK_AUTHORIZED_PARTIES"),
        clerk_audience=reader.strict_comma_set("CLERK_AUDIENCE"),
        workflow_queue_url=reader.url("WORKFLOW_QUEUE_URL"),
        sqs_endpoint_url=reader.url("SQS_ENDPOINT_URL"),
        aws_region=reader.text("AWS_REGION") or "us-east-1",
        use_db_secrets=reader.boolean("USE_DB_SECRETS", default=False),
        keyring=reader.keyring("SECRETS_ENCRYPTION_KEY"),
        secrets_prefix=reader.secrets_prefix("SECRETS_PREFIX"),
        http_node_allow_private_network=reader.boolean(
            "HTTP_NODE_ALLOW_PRIVATE_NETWORK", default=False
        ),
        execution_rate_per_second=reader.positive_int("EXECUTION_RATE_PER_SECOND", 20),
        execution_rate_burst=reader.positive_int("EXECUTION_RATE_BURST", 100),
        run_timeout_s=reader.positive_int("RUN_TIMEOUT_S", 900),
        max_running_per_user=reader.positive_int("MAX_RUNNING_PER_USER", 10),
        max_queued_executions=reader.positive_int("MAX_QUEUED_EXECUTIONS", 10_000),
        max_event_streams_per_user=reader.positive_int("MAX_EVENT_STREAMS_PER_USER", 10),
        max_workflows_per_user=reader.positive_int("MAX_WORKFLOWS_PER_USER", 1000),
        max_credentials_per_user=reader.positive_int("MAX_CREDENTIALS_PER_USER", 500),
        versions_kept_per_workflow=reader.positive_int("VERSIONS_KEPT_PER_WORKFLOW", 100),
        write_rate_per_second=reader.positive_int("WRITE_RATE_PER_SECOND", 10),
        write_rate_burst=reader.positive_int("WRITE_RATE_BURST", 100),
        webhook_wait_s=reader.positive_number("WEBHOOK_WAIT_S", 30.0),
        webhook_rate_per_second=reader.positive_int("WEBHOOK_RATE_PER_SECOND", 50),
        webhook_rate_burst=reader.positive_int("WEBHOOK_RATE_BURST", 100),
        idempotency_hmac_key=reader.key_bytes("IDEMPOTENCY_HMAC_KEY"),
        # People read an embedded server's and a maintenance command's log; machines a server's.
        log_format=reader.choice(
            "LOG_FORMAT", LOG_FORMATS, "json" if mode in (Mode.SERVE, Mode.WORKER) else "text"
        ),
        metrics_enabled=reader.boolean("METRICS_ENABLED", default=True),
        metrics_host=reader.text("METRICS_HOST") or "127.0.0.1",
        metrics_port=reader.port("METRICS_PORT", 9100),
        shutdown_grace_s=reader.positive_int("SHUTDOWN_GRACE_S", 25),
        engine_limits=EngineLimits(
            max_node_output_bytes=reader.positive_int(
                "MAX_NODE_OUTPUT_BYTES", limits.max_node_output_bytes
            ),
            max_run_context_bytes=reader.positive_int(
                "MAX_RUN_CONTEXT_BYTES", limits.max_run_context_bytes
            ),
            expression_timeout_s=reader.positive_number(
                "EXPRESSION_TIMEOUT_S", limits.expression_timeout_s
            ),
            max_for_each_items=reader.positive_int("MAX_FOR_EACH_ITEMS", limits.max_for_each_items),
        ),
        schedules=read_schedule_settings(reader),
        data_dir=data_dir,
    )
    if (
        mode is Mode.SERVE
        and settings.idempotency_hmac_key is None
        and "IDEMPOTENCY_HMAC_KEY" not in reader.invalid
    ):
        reader.problems.append(
            "IDEMPOTENCY_HMAC_KEY: required by the API outside embedded mode "
            f"(base64 of {MIN_HMAC_KEY_BYTES} random bytes)"
        )
    if (
        settings.use_db_secrets
        and not settings.embedded
        and settings.keyring is None
        and "SECRETS_ENCRYPTION_KEY" not in reader.invalid
    ):
        reader.problems.append(
            "SECRETS_ENCRYPTION_KEY: required when USE_DB_SECRETS=true "
            "(comma-separated <key id>:<base64 of 32 bytes>)"
        )
    if (
        mode in (Mode.SERVE, Mode.WORKER)
        and not settings.secrets_in_database
        and settings.secrets_prefix is None
        and "SECRETS_PREFIX" not in reader.invalid
    ):
        reader.problems.append(SECRETS_PREFIX_REQUIRED)
    queue_missing = (
        settings.workflow_queue_url is None and "WORKFLOW_QUEUE_URL" not in reader.invalid
    )
    if mode in (Mode.SERVE, Mode.WORKER) and queue_missing:
        reader.problems.append("WORKFLOW_QUEUE_URL: required outside embedded mode")
    if (
        mode is Mode.SERVE
        and settings.clerk_frontend_url is None
        and "CLERK_FRONTEND_URL" not in reader.invalid
    ):
        reader.problems.append(CLERK_FRONTEND_URL_REQUIRED)
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


SECRETS_PREFIX_REQUIRED = (
    "SECRETS_PREFIX: required when secrets are kept in AWS Secrets Manager "
    "(USE_DB_SECRETS=false); one per deployment, e.g. flowbuilder/production/"
)
CLERK_FRONTEND_URL_REQUIRED = (
    "CLERK_FRONTEND_URL: required by serve; every token's iss must equal it"
)


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is this machine's
    loopback; `localhost` is taken at its word, any other name is not loopback."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]")).is_loopback
    except ValueError:
        return False


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []
        self.invalid: set[str] = set()

    def _fail(self, name: str, message: str) -> None:
        # One line per variable: the first problem found with it is the one reported.
        if name not in self.invalid:
            self.invalid.add(name)
            self.problems.append(f"{name}: {message}")

    refuse = _fail

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def url(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self._fail(name, "must be an http or https URL")
            return None
        return value

    def clerk_url(self, name: str) -> str | None:
        """A URL that tokens or their keys are trusted from: https, or http on loopback only
        (a local test server), since keys fetched in the clear could be anyone's."""
        value = self.url(name)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
            self._fail(name, "must be an https URL (http only on a loopback host)")
            return None
        return value

    def secrets_prefix(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        # Without the slash, `flowbuilder/prod` would also be the start of every name under
        # `flowbuilder/prod-old/`.
        prefix = value if value.endswith("/") else value + "/"
        if not _SECRETS_PREFIX.fullmatch(prefix):
            self._fail(name, "must be 1 to 256 of A-Z a-z 0-9 / _ + = . @ -")
            return None
        return prefix

    def refuse_production_settings(self) -> None:
        """Embedded mode with a production setting present is a production environment about
        to accept the local issuer's tokens: each such setting is a problem of its own."""
        for name in _PRODUCTION_SETTINGS:
            if self.text(name) is not None:
                self._fail(name, "is a production setting; embedded mode refuses to start with it")
        database_url = self.text("DATABASE_URL")
        if database_url is not None and database_url.startswith("postgres"):
            self._fail("DATABASE_URL", "names Postgres; embedded mode keeps to SQLite")

    def keyring(self, name: str) -> Keyring | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return Keyring.parse(value)
        except KeyringError as exc:  # its message never holds key material
            self._fail(name, str(exc))
            return None

    def key_bytes(self, name: str) -> bytes | None:
        """A secret key given as base64 of at least MIN_HMAC_KEY_BYTES bytes."""
        value = self.text(name)
        if value is None:
            return None
        try:
            key = base64.b64decode(value, validate=True)
        except binascii.Error:
            key = b""
        if len(key) < MIN_HMAC_KEY_BYTES:
            self._fail(name, f"must be base64 of at least {MIN_HMAC_KEY_BYTES} bytes")
            return None
        return key

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._env.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        self._fail(name, "must be true or false")
        return default

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        value = (self.text(name) or default).lower()
        if value not in allowed:
            self._fail(name, "must be one of " + ", ".join(allowed))
            return default
        return value

    def port(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit() or not 1 <= int(value) <= 65535:
            self._fail(name, "must be a port number (1-65535)")
            return default
        return int(value)

    def positive_int(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < 1:
            self._fail(name, "must be a positive integer")
            return default
        return int(value)

    def positive_number(self, name: str, default: float) -> float:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = 0.0
        if not 0 < number < float("inf"):
            self._fail(name, "must be a positive number")
            return default
        return number

    def strict_comma_set(self, name: str) -> frozenset[str] | None:
        """A comma-separated allowlist: None when the variable is absent; present but naming
        nothing (empty, blanks, commas) is a problem, never "no check", since a template that
        rendered to nothing must not switch the check off."""
        value = self._env.get(name)
        if value is None:
            return None
        items = frozenset(item.strip() for item in value.split(",") if item.strip())
        if not items:
            self._fail(name, "is set but names nothing; unset it, or list at least one value")
            return None
        return items

    def database_url(self, *, default_sqlite: Path | None) -> str:
        explicit = self.text("DATABASE_URL")
        if explicit is not None:
            return self._check_database_url(explicit)
        if default_sqlite is not None:
            return f"sqlite+aiosqlite:///{default_sqlite}"
        host = self.text("DB_HOST") or "localhost"
        port = self.text("DB_PORT") or "5433"
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            self._fail("DB_PORT", "must be a port number (1-65535)")
        name = self.text("DB_NAME") or "flow-builder"
        user = self._env.get("DB_USER", "root")
        password = self._env.get("DB_PASSWORD", "rootpassword")
        ssl_mode = (self.text("DB_SSL_MODE") or "require").lower()
        if ssl_mode not in _SSL_MODES:
            self._fail("DB_SSL_MODE", "must be one of " + ", ".join(_SSL_MODES))
        credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
        return (
            f"postgresql+asyncpg://{credentials}@{host}:{port}/{quote(name, safe='')}"
            f"?ssl={ssl_mode}"
        )

    def _check_database_url(self, url: str) -> str:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme in ("postgres", "postgresql"):
            return "postgresql+asyncpg://" + url.split("://", 1)[1]
        if scheme in ("postgresql+asyncpg", "sqlite+aiosqlite"):
            return url
        self._fail(
            "DATABASE_URL",
            "must start with postgresql+asyncpg:// (or postgresql://) or sqlite+aiosqlite://",
        )
        return url
