"""The transport of the `http.request` node: connections go only to the checked addresses.

Public extension points only: `PinnedTransport` is an `httpx.AsyncBaseTransport` (httpx's
documented custom-transport interface, `handle_async_request`) over an
`httpcore.AsyncConnectionPool` built here with its public `network_backend` parameter. The
transport maps an httpx request to an httpcore one and the response back, as httpx's own
transport does, and raises httpx's exceptions for httpcore's.

The checked addresses are *pinned*: the backend (`_PinnedBackend`) never resolves anything.
Its `connect_tcp(host, port)` looks the host up in a per-request `ContextVar` ({host: checked
addresses}) set by `pinned()` and connects to those addresses only; with no pin it refuses to
connect (fail closed), and it refuses unix sockets. httpcore opens a connection in the task of
the request that needs it, so the pin of that request is the one in scope. Everything above
the socket keeps the original host name: the pool's origin, the `Host` header, TLS SNI and
certificate verification (`server_hostname` is the URL's host, and the SSL context has
`check_hostname` on), so a DNS answer that changes between the check and the connection (DNS
rebinding) cannot redirect the request, and TLS still proves the server is the named host. A
pooled keep-alive connection for the same host was itself opened to a checked address. The
pool has no proxy (httpcore reads no environment), so nothing bypasses the pinning.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextvars import ContextVar
from typing import Final

import httpcore
import httpx

_PINS: ContextVar[Mapping[str, tuple[str, ...]] | None] = ContextVar(
    "flowbuilder_http_request_pins", default=None
)


def _host_key(host: str) -> str:
    return host.strip("[]").lower()


@contextlib.contextmanager
def pinned(host: str, addresses: tuple[str, ...]) -> Iterator[None]:
    """Within the block, connections to `host` in this task go to `addresses` only."""
    token = _PINS.set({_host_key(host): addresses})
    try:
        yield
    finally:
        _PINS.reset(token)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects to the addresses checked for the host in this request, never resolving."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        pins = _PINS.get()
        addresses = pins.get(_host_key(host)) if pins is not None else None
        if not addresses:
            raise httpcore.ConnectError("no checked address for this host")
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool that connects through `_PinnedBackend`: no
    proxy (httpcore reads no environment), HTTP/1.1 only, no retries."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_PinnedBackend(),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise TypeError("an async transport needs an async request body")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            # Carries httpx's per-request timeouts ("timeout") down to httpcore.
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            core_response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(core_response),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    """An httpcore response body as httpx reads it, with httpx's exceptions."""

    def __init__(self, response: httpcore.Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._response.aiter_stream():
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


# The most specific first: an httpcore.ConnectTimeout is also an httpcore.TimeoutException.
_HTTPX_ERRORS: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """httpcore's exceptions raised as httpx's, chained to the original so that the runner can
    still find a TLS error below."""
    try:
        yield
    except Exception as exc:
        for core_error, httpx_error in _HTTPX_ERRORS:
            if isinstance(exc, core_error):
                raise httpx_error(str(exc)) from exc
        raise
