"""Settings from the environment, under the seed's variable names and defaults.

`load_settings` checks everything up front and raises SettingsError with one line per problem
naming the variable; no value is echoed, since some are secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.settings_reader import (
    MIN_HMAC_KEY_BYTES,
    EnvironmentReader,
)
from flowbuilder_adapters.settings_reader import (
    is_loopback_host as is_loopback_host,  # the commands check the address they bind with it
)
from flowbuilder_adapters.settings_schedules import ScheduleSettings, read_schedule_settings
from flowbuilder_core.executions.bounds import EngineLimits

EMBEDDED_DIR = Path(".flowbuilder")
EMBEDDED_ISSUER = "flowbuilder-embedded"
CLERK_BACKEND_JWKS_URL = "https://api.clerk.com/v1/jwks"
LOG_FORMATS = ("json", "text")
# Set by `flowbuilder serve --embedded` for the app factory: the address it binds. Not read by
# `load_settings`, and not an operator's setting.
BIND_HOST_VARIABLE = "FLOWBUILDER_BIND_HOST"


MAX_WORKER_POLL_S = 20


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
    max_concurrent_api_requests: int = 1
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
    worker_poll_s: int = 10
    """How long a worker's receive waits on an empty SQS queue (long polling), 1 to 20 s."""
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
    reader = EnvironmentReader(env)
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
        max_concurrent_api_requests=reader.positive_int("MAX_CONCURRENT_API_REQUESTS", 1),
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
        worker_poll_s=reader.positive_int("WORKER_POLL_S", 10),
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
    if settings.worker_poll_s > MAX_WORKER_POLL_S:
        reader.problems.append(
            f"WORKER_POLL_S: at most {MAX_WORKER_POLL_S} (SQS waits at most 20 s for a message)"
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
