"""The documentation page at `/docs`: Swagger UI, served by the application itself.

Swagger UI rather than Scalar or Redoc: it renders OpenAPI 3.1 (what Litestar writes), lets a
developer try an endpoint with a bearer token from the page, and needs nothing but its two
files: no web fonts, no inline script (its start-up is `init.js`, a file of ours), so the page
works without internet under a strict Content-Security-Policy. Scalar loads fonts from its CDN
unless told otherwise and bundles far more; Redoc cannot send a request, and its CSS-in-JS
needs inline styles.

The files are a pinned Swagger UI release shipped in this package (`static/swagger-ui/`, with
its licence); no request leaves the machine, and a new release of Swagger UI reaches the page
only when someone updates those files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from litestar import Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath

DOCS_PATH = "/docs"
SWAGGER_UI_VERSION = "5.35.0"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""Everything from this origin only, nothing inline: the page's scripts, styles and the
requests "Try it out" sends. `data:` images are Swagger UI's icons."""

_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "init.js": "text/javascript; charset=utf-8",
}
_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>FlowBuilder API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{DOCS_PATH}/static/swagger-ui.css?v={SWAGGER_UI_VERSION}">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_PATH}/static/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
<script src="{DOCS_PATH}/static/init.js?v={SWAGGER_UI_VERSION}"></script>
</body>
</html>
""".encode()


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str


@cache
def _asset(name: str) -> _Asset:
    """One of the page's files, read once from the package."""
    if name not in _ASSETS:
        raise NotFoundException
    body = files("flowbuilder_http").joinpath("static", "swagger-ui", name).read_bytes()
    return _Asset(body, _ASSETS[name])


@get("/static/{name:str}", include_in_schema=False, sync_to_thread=False)
def docs_asset(name: FromPath[str]) -> Response[bytes]:
    """Swagger UI's files and ours. The URLs carry the version, so they may be cached long."""
    asset = _asset(name)
    return Response(
        asset.body,
        headers={"Content-Type": asset.media_type, "Cache-Control": "public, max-age=86400"},
    )


class SwaggerUIPlugin(OpenAPIRenderPlugin):
    """`/docs`: the page that loads Swagger UI from `/docs/static/`."""

    def __init__(self) -> None:
        super().__init__(path="/")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return _PAGE

    def receive_router(self, router: Router) -> None:
        router.register(docs_asset)


def docs_router() -> Router:
    """The router of everything under `/docs` (the page, its files, the OpenAPI document),
    every answer with the Content-Security-Policy."""
    return Router(
        DOCS_PATH,
        route_handlers=[],
        include_in_schema=False,
        response_headers=[
            ResponseHeader(name="Content-Security-Policy", value=CONTENT_SECURITY_POLICY),
            ResponseHeader(name="X-Content-Type-Options", value="nosniff"),
            ResponseHeader(name="Referrer-Policy", value="no-referrer"),
        ],
    )
