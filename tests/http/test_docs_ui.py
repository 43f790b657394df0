"""The `/docs` page and its files come from this package: a pinned Swagger UI with its licence,
nothing from another origin, a Content-Security-Policy on every answer."""

from __future__ import annotations

import hashlib
import re
from importlib.resources import files

from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_http.docs_ui import SWAGGER_UI_VERSION

Client = AsyncTestClient[Litestar]
ASSETS = files("flowbuilder_http").joinpath("static", "swagger-ui")


async def test_the_page_loads_nothing_but_files_of_its_own_origin(client: Client) -> None:
    page = await client.get("/docs")

    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert page.status_code == 200
    assert urls, "the page loads its files"
    assert all(url.startswith(("/docs/static/", "data:")) for url in urls), urls
    assert "<script>" not in page.text, "no inline script"
    assert "<style" not in page.text, "no inline style"
    assert f"v={SWAGGER_UI_VERSION}" in page.text


async def test_every_file_under_docs_has_the_content_security_policy(client: Client) -> None:
    answers = [
        await client.get(path)
        for path in (
            "/docs",
            "/docs/openapi.json",
            "/docs/static/swagger-ui-bundle.js",
            "/docs/static/swagger-ui.css",
            "/docs/static/init.js",
        )
    ]

    assert [a.status_code for a in answers] == [200] * 5
    policies = {a.headers["content-security-policy"] for a in answers}
    assert len(policies) == 1
    assert answers[2].headers["content-type"].startswith("text/javascript")
    assert answers[3].headers["content-type"].startswith("text/css")


async def test_only_the_pages_own_files_are_served(client: Client) -> None:
    for name in ("README.md", "LICENSE", "..%2F__init__.py", "nothing.js"):
        assert (await client.get(f"/docs/static/{name}")).status_code == 404, name


def test_the_shipped_swagger_ui_is_the_pinned_release_with_its_licence() -> None:
    readme = ASSETS.joinpath("README.md").read_text()
    pinned = dict(re.findall(r"\| `([^`]+)` \| `([0-9a-f]{64})` \|", readme))

    actual = {
        name: hashlib.sha256(ASSETS.joinpath(name).read_bytes()).hexdigest() for name in pinned
    }

    assert set(pinned) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    assert actual == pinned
    assert f"swagger-ui-dist@{SWAGGER_UI_VERSION}" in readme
    assert "Apache License" in ASSETS.joinpath("LICENSE").read_text()
    assert ASSETS.joinpath("swagger-ui-bundle.js.LICENSE.txt").is_file()
