"""The transport of the `http.request` node: connections go only to the checked addresses.

The checked addresses are *pinned*: the httpx client runs on an httpcore connection pool
whose network backend (`_PinnedBackend`) never resolves anything. Its `connect_tcp(host, port)`
looks the host up in a per-request `ContextVar` ({host: checked addresses}) set by `pinned()`
and connects to those addresses only; with no pin it refuses to connect (fail closed). httpcore
opens a connection in the task of the request that needs it, so the pin of that request is the
one in scope. Everything above the socket keeps the original host name: the pool's origin,
the `Host` header, TLS SNI and certificate verification (`server_hostname` is the URL's host,
and the SSL context has `check_hostname` on), so a DNS answer that changes between the check
and the connection (DNS rebinding) cannot redirect the request, and TLS still proves the
server is the named host. A pooled keep-alive connection for the same host was itself opened
to a checked address.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar

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


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request/response mapping, exception mapping) over a connection
    pool that uses `_PinnedBackend`. httpx has no public hook for the network backend, so the
    pool it builds is replaced with an equivalent one; the check below makes an httpx upgrade
    that changes this fail loudly rather than silently resolve names again."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context, trust_env=False, retries=0)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport no longer keeps its pool in `_pool`")
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=_PinnedBackend(),
        )
