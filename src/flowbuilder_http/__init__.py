"""The HTTP adapter: a Litestar app over the core's use cases, and the `flowbuilder` CLI.

Both need the [server] extra; without it, importing this package fails with one line saying so.
"""

from flowbuilder_adapters import require_extra

require_extra(
    "flowbuilder_http",
    ("server",),
    "litestar",
    "msgspec",
    "dishka",
    "granian",
    "uvloop",
    "prometheus_client",
    "dotenv",
)
