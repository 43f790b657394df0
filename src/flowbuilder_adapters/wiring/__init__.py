"""The composition root: the one place that knows which adapter stands behind each port.

Providers are split by layer (`core`, `storage`, `services`, `scopes`, `processes`); each
adapter is chosen from `Settings` by `providers_for`. The entrypoints (`flowbuilder serve`,
`worker` and the maintenance commands, in `flowbuilder_http`) use only what this package
exports, and each asks its container for one object: the API its use cases per request, a
process its `Background`. Nothing below them holds a container, except the scope bridges in
`scopes.py`. Providers have no side effects: `prepare_embedded` creates the embedded keys.
"""

from flowbuilder_adapters.background import Background
from flowbuilder_adapters.log_context import current_execution_id, hidden_values, hide_everywhere
from flowbuilder_adapters.metrics import exposition, observe_readiness, observe_request
from flowbuilder_adapters.settings import (
    EMBEDDED_DIR,
    Mode,
    Settings,
    SettingsError,
    load_settings,
)
from flowbuilder_adapters.sql.connections import Access
from flowbuilder_adapters.wiring.core import CoreProvider, RunsProvider
from flowbuilder_adapters.wiring.processes import (
    BackgroundProvider,
    issue_dev_token,
    migrate,
    prepare_embedded,
    providers_for,
    reencrypt_database,
    run_worker,
    sweep_secrets,
)
from flowbuilder_adapters.wiring.scopes import ScopesProvider
from flowbuilder_adapters.wiring.services import (
    AuthProvider,
    DatabaseSecretsProvider,
    OutboxProvider,
    QueueProvider,
    SecretsManagerProvider,
    fingerprint_key_of,
)
from flowbuilder_adapters.wiring.storage import MemoryProvider, SqlHealthProvider, SqlProvider
from flowbuilder_adapters.wiring.webhooks import WebhooksProvider

__all__ = [
    "EMBEDDED_DIR",
    "Access",
    "AuthProvider",
    "Background",
    "BackgroundProvider",
    "CoreProvider",
    "DatabaseSecretsProvider",
    "MemoryProvider",
    "Mode",
    "OutboxProvider",
    "QueueProvider",
    "RunsProvider",
    "ScopesProvider",
    "SecretsManagerProvider",
    "Settings",
    "SettingsError",
    "SqlHealthProvider",
    "SqlProvider",
    "WebhooksProvider",
    "current_execution_id",
    "exposition",
    "fingerprint_key_of",
    "hidden_values",
    "hide_everywhere",
    "issue_dev_token",
    "load_settings",
    "migrate",
    "observe_readiness",
    "observe_request",
    "prepare_embedded",
    "providers_for",
    "reencrypt_database",
    "run_worker",
    "sweep_secrets",
]
