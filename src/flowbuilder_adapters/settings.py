"""Settings from the environment, under the seed's variable names and defaults.

`load_settings` checks everything up front and raises SettingsError with one line per problem
naming the variable; no value is echoed, since some are secrets.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, urlsplit

from flowbuilder_adapters.secrets.keyring import Keyring, KeyringError

EMBEDDED_DIR = Path(".flowbuilder")
EMBEDDED_ISSUER = "flowbuilder-embedded"
CLERK_BACKEND_JWKS_URL = "https://api.clerk.com/v1/jwks"
MIN_HMAC_KEY_BYTES = 32
LOG_FORMATS = ("json", "text")
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


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
    workflow_queue_url: str | None = None
    sqs_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    use_db_secrets: bool = False
    keyring: Keyring | None = None
    http_node_allow_private_network: bool = False
    execution_rate_per_second: int = 20
    execution_rate_burst: int = 100
    run_timeout_s: int = 900
    max_running_per_user: int = 10
    max_workflows_per_user: int = 1000
    max_credentials_per_user: int = 500
    versions_kept_per_workflow: int = 100
    write_rate_per_second: int = 10
    write_rate_burst: int = 100
    idempotency_hmac_key: bytes | None = field(default=None, repr=False)
    log_format: str = "json"
    metrics_enabled: bool = True
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9100
    shutdown_grace_s: int = 25
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
        return not (self.clerk_jwks_url or self.clerk_frontend_url)


def load_settings(env: Mapping[str, str], mode: Mode) -> Settings:
    reader = _Reader(env)
    embedded = mode is Mode.EMBEDDED
    data_dir = EMBEDDED_DIR
    database_url = reader.database_url(
        default_sqlite=(data_dir / "flowbuilder.db") if embedded else None
    )
    settings = Settings(
        mode=mode,
        database_url=database_url,
        clerk_secret_key=reader.text("CLERK_SECRET_KEY"),
        clerk_frontend_url=reader.url("CLERK_FRONTEND_URL"),
        clerk_jwks_url=reader.url("CLERK_JWKS_URL"),
        clerk_authorized_parties=reader.comma_set("CLERK_AUTHORIZED_PARTIES"),
        workflow_queue_url=reader.url("WORKFLOW_QUEUE_URL"),
        sqs_endpoint_url=reader.url("SQS_ENDPOINT_URL"),
        aws_region=reader.text("AWS_REGION") or "us-east-1",
        use_db_secrets=reader.boolean("USE_DB_SECRETS", default=False),
        keyring=reader.keyring("SECRETS_ENCRYPTION_KEY"),
        http_node_allow_private_network=reader.boolean(
            "HTTP_NODE_ALLOW_PRIVATE_NETWORK", default=False
        ),
        execution_rate_per_second=reader.positive_int("EXECUTION_RATE_PER_SECOND", 20),
        execution_rate_burst=reader.positive_int("EXECUTION_RATE_BURST", 100),
        run_timeout_s=reader.positive_int("RUN_TIMEOUT_S", 900),
        max_running_per_user=reader.positive_int("MAX_RUNNING_PER_USER", 10),
        max_workflows_per_user=reader.positive_int("MAX_WORKFLOWS_PER_USER", 1000),
        max_credentials_per_user=reader.positive_int("MAX_CREDENTIALS_PER_USER", 500),
        versions_kept_per_workflow=reader.positive_int("VERSIONS_KEPT_PER_WORKFLOW", 100),
        write_rate_per_second=reader.positive_int("WRITE_RATE_PER_SECOND", 10),
        write_rate_burst=reader.positive_int("WRITE_RATE_BURST", 100),
        idempotency_hmac_key=reader.key_bytes("IDEMPOTENCY_HMAC_KEY"),
        # People read an embedded server's and a maintenance command's log; machines a server's.
        log_format=reader.choice(
            "LOG_FORMAT", LOG_FORMATS, "json" if mode in (Mode.SERVE, Mode.WORKER) else "text"
        ),
        metrics_enabled=reader.boolean("METRICS_ENABLED", default=True),
        metrics_host=reader.text("METRICS_HOST") or "127.0.0.1",
        metrics_port=reader.port("METRICS_PORT", 9100),
        shutdown_grace_s=reader.positive_int("SHUTDOWN_GRACE_S", 25),
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
    queue_missing = (
        settings.workflow_queue_url is None and "WORKFLOW_QUEUE_URL" not in reader.invalid
    )
    if mode in (Mode.SERVE, Mode.WORKER) and queue_missing:
        reader.problems.append("WORKFLOW_QUEUE_URL: required outside embedded mode")
    if mode is Mode.SERVE and not (
        settings.clerk_jwks_url or settings.clerk_frontend_url or settings.clerk_secret_key
    ):
        reader.problems.append(
            "CLERK_FRONTEND_URL: not set (nor CLERK_JWKS_URL or CLERK_SECRET_KEY); "
            "the server cannot verify sign-ins"
        )
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []
        self.invalid: set[str] = set()

    def _fail(self, name: str, message: str) -> None:
        self.invalid.add(name)
        self.problems.append(f"{name}: {message}")

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

    def comma_set(self, name: str) -> frozenset[str] | None:
        value = self.text(name)
        if value is None:
            return None
        items = frozenset(item.strip() for item in value.split(",") if item.strip())
        return items or None

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
