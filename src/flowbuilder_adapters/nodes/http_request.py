"""The `http.request` node: one outbound HTTP request with httpx, behind an SSRF guard.

SSRF guard and connection pinning
---------------------------------
Before any connection the runner resolves the URL's host itself (a literal IP, in any form the
OS accepts: `127.0.0.1`, `2130706433`, `0x7f000001`, `127.1`, `[::1]`, is parsed with
`socket.inet_aton` / `ipaddress`; a name goes through the resolver, by default the event loop's
`getaddrinfo`). Unless `allow_private_network` is set, the node fails with `ssrf_blocked` when
ANY of the addresses is not a public unicast address (see `is_blocked_address`).

The checked addresses are then *pinned*: the httpx client runs on an httpcore connection pool
whose network backend (`_PinnedBackend`) never resolves anything. Its `connect_tcp(host, port)`
looks the host up in a per-request `ContextVar` ({host: checked addresses}) set by `run()` and
connects to those addresses only; with no pin it refuses to connect (fail closed). httpcore
opens a connection in the task of the request that needs it, so the pin of that request is the
one in scope. Everything above the socket keeps the original host name: the pool's origin,
the `Host` header, TLS SNI and certificate verification (`server_hostname` is the URL's host,
and the SSL context has `check_hostname` on), so a DNS answer that changes between the check
and the connection (DNS rebinding) cannot redirect the request, and TLS still proves the
server is the named host. A pooled keep-alive connection for the same host was itself opened
to a checked address.

Other rules: redirects are never followed (a 3xx is a non-2xx answer, `http_status`); no
proxy or `.netrc` from the environment (`trust_env=False`), since a proxy would bypass the
pinning; the response body is streamed and reading stops past `max_response_bytes`
(`response_too_large`); the whole call, name resolution included, has one deadline
(`timeout_s`). Credential values never appear in an error message, and are replaced by `***`
wherever the server echoes them into the output (headers or body).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Final

import httpcore
import httpx

from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import NodeCall, NodeRunner, ResolvedSecret

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> addresses` (IP address text): the name resolution the SSRF guard checks."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_TIMEOUT_S: Final = 10.0
MAX_TIMEOUT_S: Final = 30.0
METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE = re.compile(r"^[\x20-\x7e\t]*$")
_REDACTED: Final = "***"
_MIN_REDACTED_LENGTH: Final = 4

_BLOCKED_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        # IPv4: "this network", private, carrier-grade NAT, loopback, link-local (and the
        # metadata address), IETF protocol assignments, documentation, benchmarking,
        # multicast, reserved and broadcast.
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        # IPv6: unspecified, loopback, IPv4-compatible/mapped/translated, discard, IETF
        # protocol assignments (Teredo, ORCHID, ...), documentation, unique-local (and the
        # AWS metadata address fd00:ec2::254), link-local, site-local, multicast.
        "::/96",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def is_blocked_address(address: IpAddress) -> bool:
    """Whether the SSRF guard refuses `address`: anything but a public unicast address,
    including an IPv6 address that embeds a refused IPv4 one (mapped, 6to4, Teredo, NAT64,
    IPv4-compatible)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(int(address))
        for embedded in _embedded_ipv4(address):
            if is_blocked_address(embedded):
                return True
    if address in _METADATA_ADDRESSES:
        return True
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    ):
        return True
    return any(address.version == net.version and address in net for net in _BLOCKED_NETWORKS)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or int(address) >> 32 == 0:  # NAT64, or IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def parse_ip_literal(host: str) -> IpAddress | None:
    """The address a URL host stands for when it is an IP literal, read as the OS reads it
    (`inet_aton`: decimal `2130706433`, hex `0x7f000001`, octal, short `127.1`); None for a
    name."""
    text = host.strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(text)
    if not text or not all(c.isalnum() or c == "." for c in text):
        return None
    try:
        packed = socket.inet_aton(text)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


# ---------------------------------------------------------------------------------------------
# Connection pinning
# ---------------------------------------------------------------------------------------------

_PINS: ContextVar[Mapping[str, tuple[str, ...]] | None] = ContextVar(
    "flowbuilder_http_request_pins", default=None
)


def _host_key(host: str) -> str:
    return host.strip("[]").lower()


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


class _PinnedTransport(httpx.AsyncHTTPTransport):
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


# ---------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------


class _TooLargeError(Exception):
    pass


class HttpRequestRunner(NodeRunner):
    """Runs `http.request` nodes. Output `{"status", "headers", "body"}`; fails with
    `invalid_parameters`, `invalid_credential`, `ssrf_blocked`, `http_status` (output: the
    response), `response_too_large`, `timeout` or `connection_failed`.

    `ssl_context` replaces the trust store (tests; a private CA): by default httpx's verified
    context (certifi), always with host name checking.
    """

    def __init__(
        self,
        *,
        allow_private_network: bool = False,
        resolver: Resolver | None = None,
        max_response_bytes: int = 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        if context.verify_mode != ssl.CERT_REQUIRED or not context.check_hostname:
            raise ValueError("the SSL context must verify certificates and host names")
        self._allow_private_network = allow_private_network
        self._resolver: Resolver = resolver if resolver is not None else _getaddrinfo
        self._max_response_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            transport=_PinnedTransport(context),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "FlowBuilder"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self, call: NodeCall) -> Json:
        request = _parse_request(call.parameters)
        secrets: list[str] = []
        if call.credential is not None:
            credential_headers, secrets = _credential_headers(call.credential)
            overridden = {name.lower() for name in credential_headers}
            request.headers = {
                k: v for k, v in request.headers.items() if k.lower() not in overridden
            }
            request.headers.update(credential_headers)
        try:
            async with asyncio.timeout(request.timeout_s):
                return await self._send(request, secrets)
        except TimeoutError:
            raise NodeFailedError(
                "timeout", f"The request did not complete within {request.timeout_s:g} s."
            ) from None

    async def _send(self, request: _Request, secrets: list[str]) -> Json:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        addresses = await self._checked_addresses(host, port)
        token = _PINS.set({_host_key(host): addresses})
        try:
            built = self._client.build_request(
                request.method,
                url,
                headers=request.headers,
                content=request.content,
                timeout=httpx.Timeout(request.timeout_s),
            )
            try:
                response = await self._client.send(built, stream=True)
            except httpx.TimeoutException:
                raise NodeFailedError(
                    "timeout", f"The request did not complete within {request.timeout_s:g} s."
                ) from None
            except httpx.TransportError as exc:
                raise NodeFailedError(
                    "connection_failed", _connection_message(exc, host, port)
                ) from None
            try:
                body = await self._read_body(response)
            except _TooLargeError:
                raise NodeFailedError(
                    "response_too_large",
                    f"The response body is larger than {self._max_response_bytes} bytes.",
                ) from None
            except httpx.TimeoutException:
                raise NodeFailedError(
                    "timeout", f"The request did not complete within {request.timeout_s:g} s."
                ) from None
            except httpx.TransportError:
                raise NodeFailedError(
                    "connection_failed",
                    f"The connection to {host}:{port} broke while reading the response.",
                ) from None
            finally:
                await response.aclose()
        finally:
            _PINS.reset(token)
        output: dict[str, Json] = {
            "status": response.status_code,
            "headers": {k.lower(): v for k, v in response.headers.items()},
            "body": _decode_body(response, body),
        }
        output = _redact(output, secrets)
        if not 200 <= response.status_code < 300:
            raise NodeFailedError(
                "http_status",
                f"The server answered with HTTP status {response.status_code}.",
                output=output,
            )
        return output

    async def _checked_addresses(self, host: str, port: int) -> tuple[str, ...]:
        literal = parse_ip_literal(host)
        if literal is not None:
            addresses: list[IpAddress] = [literal]
        else:
            try:
                answers = await self._resolver(host, port)
            except (OSError, UnicodeError):
                answers = []
            addresses = []
            for answer in answers:
                with contextlib.suppress(ValueError):
                    addresses.append(ipaddress.ip_address(answer))
            if not addresses:
                raise NodeFailedError(
                    "connection_failed", f"The host name {host} could not be resolved."
                )
        if not self._allow_private_network:
            for address in addresses:
                if is_blocked_address(address):
                    raise NodeFailedError(
                        "ssrf_blocked",
                        f"The host {host} resolves to {address}, which is not a public address;"
                        " requests to private networks are not allowed.",
                    )
        return tuple(dict.fromkeys(address.compressed for address in addresses))

    async def _read_body(self, response: httpx.Response) -> bytes:
        cap = self._max_response_bytes
        length = response.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            raise _TooLargeError
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > cap:
                raise _TooLargeError
        return bytes(body)


# ---------------------------------------------------------------------------------------------
# Parameters, credentials, output
# ---------------------------------------------------------------------------------------------


class _Request:
    __slots__ = ("content", "headers", "method", "timeout_s", "url")

    def __init__(
        self,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        content: bytes | None,
        timeout_s: float,
    ) -> None:
        self.method, self.url, self.headers = method, url, headers
        self.content, self.timeout_s = content, timeout_s


def _invalid(message: str) -> NodeFailedError:
    return NodeFailedError("invalid_parameters", message)


def _string_map(parameters: Mapping[str, Json], name: str) -> dict[str, str]:
    value = parameters.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(f"`{name}` must be an object of strings.")
    return dict(value)


def _parse_request(parameters: Mapping[str, Json]) -> _Request:
    method = parameters.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise _invalid(f"`method` must be one of {', '.join(sorted(METHODS))}.")
    raw_url = parameters.get("url")
    if not isinstance(raw_url, str):
        raise _invalid("`url` must be a string.")
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, ValueError, TypeError):
        raise _invalid("`url` is not a valid URL.") from None
    if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
        raise _invalid("`url` must be an http or https URL with a host.")

    headers = _string_map(parameters, "headers")
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise _invalid(f"`headers` has an invalid header name: {name!r}.")
        if not _HEADER_VALUE.match(value):
            raise _invalid(f"`headers.{name}` must be printable ASCII on one line.")
    if url.userinfo:  # user:password@ in the URL: basic auth, below headers and credentials
        if not any(k.lower() == "authorization" for k in headers):
            user_pass = f"{url.username}:{url.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(user_pass).decode("ascii")
        url = url.copy_with(username=None, password=None)
    query = _string_map(parameters, "query")
    if query:
        url = url.copy_merge_params(query)

    body = parameters.get("body")
    content: bytes | None = None
    has_content_type = any(k.lower() == "content-type" for k in headers)
    if isinstance(body, str):
        content = body.encode("utf-8")
        if not has_content_type:
            headers["Content-Type"] = "text/plain; charset=utf-8"
    elif body is not None:
        try:
            content = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            raise _invalid("`body` must be JSON.") from None
        if not has_content_type:
            headers["Content-Type"] = "application/json"

    timeout = parameters.get("timeout_s", DEFAULT_TIMEOUT_S)
    if timeout is None:
        timeout = DEFAULT_TIMEOUT_S
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_S
    ):
        raise _invalid(
            f"`timeout_s` must be a number of seconds above 0, at most {MAX_TIMEOUT_S:g}."
        )
    return _Request(method.upper(), url, headers, content, float(timeout))


def _credential_headers(credential: ResolvedSecret) -> tuple[dict[str, str], list[str]]:
    """The headers a credential adds, and the values to keep out of the output."""
    values = credential.data.values

    def field(name: str) -> str:
        value = values.get(name)
        if not isinstance(value, str) or not value:
            raise NodeFailedError(
                "invalid_credential", f"The {credential.type} credential has no `{name}`."
            )
        if not _HEADER_VALUE.match(value):
            raise NodeFailedError(
                "invalid_credential",
                f"The credential's `{name}` must be printable ASCII on one line.",
            )
        return value

    if credential.type == "http_bearer":
        token = field("token")
        return {"Authorization": f"Bearer {token}"}, [token]
    if credential.type == "http_basic":
        username, password = field("username"), field("password")
        encoded = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {encoded}"}, [password, encoded]
    if credential.type == "http_header":
        name, value = field("name"), field("value")
        if not _HEADER_NAME.match(name):
            raise NodeFailedError(
                "invalid_credential", "The credential's header name is not a valid header name."
            )
        return {name: value}, [value]
    raise NodeFailedError(
        "invalid_credential",
        f"A {credential.type} credential cannot be used by an http.request node.",
    )


def _decode_body(response: httpx.Response, body: bytes) -> Json:
    charset = response.charset_encoding or "utf-8"
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            parsed: Json = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            return text
        return parsed
    return text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _redact(value: Json, secrets: list[str]) -> Json:
    """`value` with every credential value (of a useful length) replaced by `***`."""
    secrets = sorted({s for s in secrets if len(s) >= _MIN_REDACTED_LENGTH}, key=len, reverse=True)
    if not secrets:
        return value

    def scrub(item: Json) -> Json:
        if isinstance(item, str):
            for secret in secrets:
                item = item.replace(secret, _REDACTED)
            return item
        if isinstance(item, list):
            return [scrub(x) for x in item]
        if isinstance(item, dict):
            return {scrub(k): scrub(v) for k, v in item.items()}
        return item

    return scrub(value)


def _connection_message(exc: httpx.TransportError, host: str, port: int) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"The TLS certificate of {host} could not be verified."
        if isinstance(cause, ssl.SSLError):
            return f"The TLS handshake with {host}:{port} failed."
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return f"Could not connect to {host}:{port}."
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return f"The server at {host}:{port} broke the HTTP protocol."
    return f"The connection to {host}:{port} failed."
