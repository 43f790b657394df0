"""No log line shows a token, a secret or a credential value: one canary sent down every path
that logs (start-up with secret settings, refused tokens, unknown paths, credential writes
good and bad, runs that use credentials and fail, shutdown), then the whole log searched."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.processes import clean_env, free_port, run, server

CANARY = "canary-logs-e2e-90d4"
KEY = base64.b64encode(CANARY.encode().ljust(32, b"!")).decode()
FORGED_JWT = (
    ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).decode().rstrip("=")
        for part in ({"alg": "RS256", "kid": CANARY}, {"sub": CANARY})
    )
    + f".{CANARY}"
)


class EchoingTarget:
    """A loopback server that fails every request with a 500 echoing its Authorization header:
    the worst a node's target can do with a credential."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"denied: {self.headers.get('Authorization')}".encode()
                self.send_response(500)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.address = f"127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def target() -> Iterator[EchoingTarget]:
    served = EchoingTarget()
    yield served
    served.stop()


def fetching(credential_id: str | None, url: str) -> dict[str, Any]:
    fetch: dict[str, Any] = {
        "id": "fetch",
        "type": "http.request",
        "parameters": {"method": "GET", "url": url},
    }
    if credential_id is not None:
        fetch["credential_id"] = credential_id
    return {
        "name": "Fetch",
        "definition": {
            "nodes": [{"id": "start", "type": "trigger.manual"}, fetch],
            "edges": [{"source": "start", "target": "fetch"}],
        },
    }


def run_to_the_end(http: httpx.Client, workflow: dict[str, Any]) -> dict[str, Any]:
    created = http.post("/api/workflows", json=workflow)
    assert created.status_code == 201, created.text
    queued = http.post(f"{created.headers['location']}/execute", json={"input": {}})
    deadline = time.monotonic() + 30
    while True:
        execution: dict[str, Any] = http.get(queued.headers["location"]).json()
        if execution["status"] in ("succeeded", "failed", "cancelled"):
            return execution
        assert time.monotonic() < deadline, execution
        time.sleep(0.1)


def test_no_log_line_shows_a_token_a_secret_or_a_credential_value(
    target: EchoingTarget, tmp_path: Path
) -> None:
    env = clean_env(
        LOG_FORMAT="json",
        SECRETS_ENCRYPTION_KEY=f"k1:{KEY}",
        IDEMPOTENCY_HMAC_KEY=KEY,
        HTTP_NODE_ALLOW_PRIVATE_NETWORK="true",
    )
    token = run(["dev-token", "--user", "alice"], env, cwd=tmp_path).stdout.strip()
    port = free_port()

    with (
        server(["serve", "--embedded", "--port", str(port)], env, port, cwd=tmp_path) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http,
    ):
        refused = [
            http.get("/api/workflows", headers={"Authorization": f"Bearer {CANARY}"}),
            http.get("/api/workflows", headers={"Authorization": f"Bearer {FORGED_JWT}"}),
            http.get("/api/workflows", headers={"Authorization": f"Basic {CANARY}"}),
            http.get(f"/api/{CANARY}", params={"access_token": CANARY}),
            http.post(
                "/api/credentials",
                json={"name": "Bad", "type": "http_bearer", "data": {"token": f"{CANARY}\n"}},
            ),
            http.post(
                "/api/credentials",
                content=f'{{"name": "x", "data": {{"token": "{CANARY}"'.encode(),
                headers={"Content-Type": "application/json"},
            ),
        ]
        bearer = http.post(
            "/api/credentials",
            json={"name": "Bearer", "type": "http_bearer", "data": {"token": f"{CANARY}-b"}},
            headers={"Idempotency-Key": "first-credential"},
        ).json()
        rotated = http.put(
            f"/api/credentials/{bearer['id']}", json={"data": {"token": f"{CANARY}-rotated"}}
        )
        basic = http.post(
            "/api/credentials",
            json={
                "name": "Basic",
                "type": "http_basic",
                "data": {"username": "alice", "password": f"{CANARY}-p"},
            },
        ).json()
        runs = [
            run_to_the_end(http, fetching(bearer["id"], f"http://{target.address}/a")),
            run_to_the_end(http, fetching(basic["id"], f"http://{target.address}/b")),
            run_to_the_end(http, fetching(None, f"http://alice:{CANARY}-u@{target.address}/c")),
        ]

    assert [r.status_code for r in refused] == [401, 401, 401, 404, 422, 400]
    assert rotated.status_code == 200
    assert [r["error"]["code"] for r in runs] == ["http_status"] * 3
    log = next(tmp_path.glob("server-*.log")).read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert any(line["logger"] == "flowbuilder.access" for line in lines)
    assert any("execution_id" in line for line in lines)
    for secret in (CANARY, KEY, FORGED_JWT, token):
        assert secret not in log
