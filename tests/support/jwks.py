"""A JWKS endpoint on loopback, served from a thread, for tests that verify over real HTTP.

    with JwksServer(key) as jwks:            # serves key's public JWK at jwks.url
        verifier = ClerkTokenVerifier(jwks.url, ...)
        jwks.serve(new_key, key)             # rotate: replace the served keys
        jwks.serve_document({"keys": [...]}) # serve any JSON document
        jwks.fail(500)                       # answer every request with HTTP 500
        jwks.recover()                       # serve the keys again
        jwks.stop()                          # close the socket: connections are refused
        jwks.fetches                         # requests received so far, failed ones included
        jwks.last_headers                    # last request's headers, names lowercased

The server runs in its own thread, so async tests can await an httpx client against it
without blocking their event loop.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from support.tokens import SigningKey

JWKS_PATH = "/.well-known/jwks.json"


class JwksServer:
    """A loopback HTTP server answering GET /.well-known/jwks.json; see the module docstring."""

    def __init__(self, *keys: SigningKey) -> None:
        self._lock = threading.Lock()
        self._document: dict[str, Any] = _document(keys)
        self._failure: int | None = None
        self._fetches = 0
        self._last_headers: dict[str, str] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._running = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}{JWKS_PATH}"

    def serve(self, *keys: SigningKey) -> None:
        """Serve exactly these keys' public JWKs from now on (and stop failing)."""
        self.serve_document(_document(keys))

    def serve_document(self, document: dict[str, Any]) -> None:
        """Serve this JSON document verbatim (to mix in foreign or broken entries)."""
        with self._lock:
            self._document = document
            self._failure = None

    def fail(self, status: int = 500) -> None:
        """Answer every request with `status` and no key set until recover() or serve()."""
        with self._lock:
            self._failure = status

    def recover(self) -> None:
        with self._lock:
            self._failure = None

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    @property
    def last_headers(self) -> dict[str, str]:
        with self._lock:
            return dict(self._last_headers)

    def stop(self) -> None:
        """Shut the server down and close its socket; later connections are refused."""
        if self._running:
            self._running = False
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    def __enter__(self) -> JwksServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        with self._lock:
            self._fetches += 1
            self._last_headers = headers
            if path != JWKS_PATH:
                return HTTPStatus.NOT_FOUND, b'{"error": "not found"}'
            if self._failure is not None:
                return self._failure, b'{"error": "failing on purpose"}'
            return HTTPStatus.OK, json.dumps(self._document).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._answer(
                    self.path, {k.lower(): v for k, v in self.headers.items()}
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler


def _document(keys: tuple[SigningKey, ...]) -> dict[str, Any]:
    return {"keys": [key.jwk() for key in keys]}
