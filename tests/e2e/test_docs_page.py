"""`/docs` as a person sees it: a real server, and Debian's Chromium rendering the page with
every host but this machine unresolvable, so the page works with no request leaving it."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import httpx

from support.processes import clean_env, free_port, server

CHROMIUM = "chromium"
_OPERATION = re.compile(
    r'class="opblock opblock-(?P<method>[a-z]+)[^"]*".*?data-path="(?P<path>[^"]+)"', re.DOTALL
)


def rendered(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran, in headless Chromium that can reach 127.0.0.1 only."""
    binary = shutil.which(CHROMIUM)
    assert binary, "Debian's chromium is needed (make test installs it: make chromium)"
    result = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=20000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_docs_page_renders_every_operation_with_no_request_leaving_the_machine(
    tmp_path: Path,
) -> None:
    port = free_port()

    with server(["serve", "--embedded", "--port", str(port)], clean_env(), port, tmp_path) as base:
        page = httpx.get(f"{base}/docs")
        spec = httpx.get(f"{base}/docs/openapi.json").json()
        dom = rendered(f"{base}/docs", tmp_path / "chromium")

    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    shown = {(m.group("method"), html.unescape(m.group("path"))) for m in _OPERATION.finditer(dom)}
    assert len(operations) > 15
    assert shown == operations
    for item in spec["paths"].values():
        for operation in item.values():
            assert html.escape(operation["summary"], quote=False) in dom
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
