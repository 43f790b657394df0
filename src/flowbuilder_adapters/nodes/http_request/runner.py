"""`HttpRequestRunner`: one outbound HTTP request, composed of the node's parts.

Parameters become a request (`request`), a credential adds its headers (`credentials`), the
host is resolved and checked once (`ssrf`), and the connection goes to the checked addresses
only (`transport`). Other rules: redirects are never followed (a 3xx is a non-2xx answer,
`http_status`); no proxy or `.netrc` from the environment (`trust_env=False`), since a proxy
would bypass the pinning; the response body is streamed and reading stops past
`max_response_bytes` (`response_too_large`); the whole call, name resolution included, has
one deadline (`timeout_s`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import zlib
from typing import Any

import httpx

from flowbuilder_adapters.nodes.http_request.body import (
    ACCEPTED_ENCODINGS,
    BodyTooLargeError,
    UnsupportedEncodingError,
    read_body,
)
from flowbuilder_adapters.nodes.http_request.credentials import (
    credential_headers,
    redact,
    with_credential_headers,
)
from flowbuilder_adapters.nodes.http_request.request import (
    DEFAULT_PORTS,
    OutboundRequest,
    build_request,
)
from flowbuilder_adapters.nodes.http_request.ssrf import (
    Resolver,
    checked_addresses,
    getaddrinfo_resolver,
)
from flowbuilder_adapters.nodes.http_request.transport import PinnedTransport, pinned
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import NodeCall, NodeRunner


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
        self._resolver: Resolver = resolver if resolver is not None else getaddrinfo_resolver
        self._max_response_bytes = max_response_bytes
        self._client = httpx.AsyncClient(
            transport=PinnedTransport(context),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "FlowBuilder"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self, call: NodeCall) -> Json:
        request = build_request(call.parameters)
        secrets: list[str] = []
        if call.credential is not None:
            added, secrets = credential_headers(call.credential)
            request.headers = with_credential_headers(request.headers, added)
        try:
            async with asyncio.timeout(request.timeout_s):
                return await self._send(request, secrets)
        except TimeoutError:
            raise _timeout(request) from None

    async def _send(self, request: OutboundRequest, secrets: list[str]) -> Json:
        url = request.url
        host = url.raw_host.decode("ascii")
        port = url.port or DEFAULT_PORTS[url.scheme]
        addresses = await checked_addresses(
            host,
            port,
            resolver=self._resolver,
            allow_private_network=self._allow_private_network,
        )
        headers = httpx.Headers(request.headers)
        headers["Accept-Encoding"] = ACCEPTED_ENCODINGS  # what read_body decodes within bounds
        with pinned(host, addresses):
            built = self._client.build_request(
                request.method,
                url,
                headers=headers,
                content=request.content,
                timeout=httpx.Timeout(request.timeout_s),
            )
            try:
                response = await self._client.send(built, stream=True)
            except httpx.TimeoutException:
                raise _timeout(request) from None
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
                raise _timeout(request) from None
            except httpx.TransportError:
                raise NodeFailedError(
                    "connection_failed",
                    f"The connection to {host}:{port} broke while reading the response.",
                ) from None
            finally:
                await response.aclose()
        output: dict[str, Json] = {
            "status": response.status_code,
            "headers": {k.lower(): v for k, v in response.headers.items()},
            "body": _decode_body(response, body),
        }
        output = redact(output, secrets)
        if not 200 <= response.status_code < 300:
            raise NodeFailedError(
                "http_status",
                f"The server answered with HTTP status {response.status_code}.",
                output=output,
            )
        return output

    async def _read_body(self, response: httpx.Response) -> bytes:
        cap = self._max_response_bytes
        length = response.headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > cap:
            raise _TooLargeError
        encoding = response.headers.get("content-encoding", "")
        try:
            return await read_body(response.aiter_raw(), encoding, cap)
        except BodyTooLargeError:
            raise _TooLargeError from None
        except UnsupportedEncodingError:
            raise NodeFailedError(
                "connection_failed",
                f"The server answered in a content encoding that was not asked for: {encoding}.",
            ) from None
        except zlib.error:
            raise NodeFailedError(
                "connection_failed", "The server's compressed response body is corrupt."
            ) from None


def _timeout(request: OutboundRequest) -> NodeFailedError:
    return NodeFailedError(
        "timeout", f"The request did not complete within {request.timeout_s:g} s."
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
