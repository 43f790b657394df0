"""The Litestar application factory."""

from __future__ import annotations

import gc
import os

from dishka import Provider, make_async_container
from dishka.integrations.litestar import LitestarProvider, setup_dishka
from litestar import Litestar, Router
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from flowbuilder_adapters.settings import BIND_HOST_VARIABLE, SettingsError, is_loopback_host
from flowbuilder_adapters.wiring import (
    Background,
    Mode,
    Settings,
    fingerprint_key_of,
    load_settings,
    providers_for,
)
from flowbuilder_core.shared.errors import FlowbuilderError
from flowbuilder_core.shared.identity import TokenVerifier
from flowbuilder_http.admission import Admission
from flowbuilder_http.auth import PrincipalProvider
from flowbuilder_http.concurrency import api_slots
from flowbuilder_http.configuration import keep_secrets_out_of_logs
from flowbuilder_http.docs_ui import DOCS_PATH, SwaggerUIPlugin, docs_router
from flowbuilder_http.idempotency import IdempotencyProvider
from flowbuilder_http.observability import (
    configure_logging,
    drain_unread_body,
    request_id_middleware,
)
from flowbuilder_http.problems import (
    MAX_BODY_BYTES,
    handle_flowbuilder_error,
    handle_http_exception,
    handle_undecodable_body,
    handle_unexpected,
    handle_validation_error,
)
from flowbuilder_http.routes.credentials import credentials_router
from flowbuilder_http.routes.executions import executions_router
from flowbuilder_http.routes.hooks import receive_hook
from flowbuilder_http.routes.operations import live, metrics, node_types, ready
from flowbuilder_http.routes.schedules import schedules_router
from flowbuilder_http.routes.webhooks import webhooks_router
from flowbuilder_http.routes.workflows import workflows_router

EMBEDDED_OFF_LOOPBACK = (
    "--host: embedded mode serves on loopback only, started by flowbuilder serve --embedded"
)


def create_app(settings: Settings, *providers: Provider) -> Litestar:
    """The API over the adapters `settings` choose, or over `providers` when given (tests)."""
    chosen = providers or tuple(providers_for(settings))
    container = make_async_container(
        *chosen,
        PrincipalProvider(),
        IdempotencyProvider(fingerprint_key_of(settings)),
        LitestarProvider(),
    )

    # The entrypoint's lookups: the token verifier for every request, the background services.
    admission = Admission(lambda: container.get(TokenVerifier))

    async def start() -> None:
        await (await container.get(Background)).start()

    async def stop_background() -> None:
        await (await container.get(Background)).stop()

    api = Router(
        path="/api",
        route_handlers=[
            workflows_router,
            webhooks_router,
            schedules_router,
            credentials_router,
            executions_router,
            node_types,
        ],
        middleware=[admission.middleware],
        security=[{"BearerAuth": []}],
    )
    app = Litestar(
        # Outside /api and its authentication: a scraper has no user token (API.md, Metrics),
        # a webhook's caller has the hook's own credentials (API.md, Webhooks).
        route_handlers=[
            api,
            receive_hook,
            live,
            ready,
            *([metrics] if settings.metrics_enabled else []),
        ],
        exception_handlers={
            FlowbuilderError: handle_flowbuilder_error,
            ValidationException: handle_validation_error,
            HTTPException: handle_http_exception,
            UnicodeDecodeError: handle_undecodable_body,
            RecursionError: handle_undecodable_body,
            Exception: handle_unexpected,
        },
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="FlowBuilder API",
            version="1.0.0",
            path=DOCS_PATH,
            render_plugins=[SwaggerUIPlugin()],  # served from the package: see docs_ui.py
            openapi_router=docs_router(),
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        bearer_format="JWT",
                        description="A Clerk session token (a dev token in embedded mode).",
                    )
                }
            ),
        ),
        on_startup=[start],
        on_shutdown=[stop_background, container.close],
        debug=False,
        logging_config=None,  # ours (configure_logging) stamps every line with the request id
    )
    setup_dishka(container, app)
    handler = drain_unread_body(app.asgi_handler)
    if settings.embedded:
        # One process runs the API and the worker on one event loop (issue #16): bounded, a
        # busy API leaves the worker its share instead of starving it (API.md, Embedded mode).
        handler = api_slots(handler, settings.max_concurrent_api_requests, MAX_BODY_BYTES)
    app.asgi_handler = request_id_middleware(handler)
    return app


def app_from_environment() -> Litestar:
    """The ASGI server's factory: settings from the environment, as `flowbuilder serve` set it.

    Embedded mode (the local token issuer) is refused unless `flowbuilder serve --embedded`
    said it binds to loopback, and, by `load_settings`, while any production setting is set:
    SettingsError, one line per problem, naming the setting.
    """
    configure_logging()
    mode = Mode.EMBEDDED if os.environ.get("FLOWBUILDER_EMBEDDED") == "1" else Mode.SERVE
    if mode is Mode.EMBEDDED and not is_loopback_host(os.environ.get(BIND_HOST_VARIABLE, "")):
        raise SettingsError([EMBEDDED_OFF_LOOPBACK])
    settings = load_settings(os.environ, mode)
    keep_secrets_out_of_logs(os.environ)
    configure_logging(settings.log_format)
    app = create_app(settings)
    app.on_startup.append(_freeze_the_heap)
    return app


def _freeze_the_heap() -> None:
    """Last of start-up, when every APP-scoped object exists (the AWS client's service models
    among them, hundreds of thousands of objects): keep it all out of every later collection,
    and collect the young generation less often (each request allocates a few thousand
    objects). Otherwise each full collection walks that heap, 100 ms at a time, in the tail of
    the latency."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
