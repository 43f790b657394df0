"""HttpRequestRunner against real HTTP(S) servers on 127.0.0.1, and its SSRF guard."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from flowbuilder_adapters.nodes.http_request import HttpRequestRunner
from flowbuilder_adapters.nodes.http_request.ssrf import is_blocked_address
from flowbuilder_adapters.nodes.http_request.transport import PinnedTransport, pinned
from flowbuilder_core.credentials.model import SecretData
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.ports import NodeCall, ResolvedSecret
from flowbuilder_core.nodes.http_request import MAX_HEADERS, MAX_QUERY_PARAMETERS, MAX_URL_LENGTH
from flowbuilder_core.workflows.model import Node

MIB = 1024 * 1024
TOKEN = "tok-S3cr3t-bearer-value"
USERNAME, PASSWORD = "alice", "pa55-S3cr3t-word"
HEADER_SECRET = "hdr-S3cr3t-api-key"

# ---------------------------------------------------------------------------------------------
# A recording HTTP server on loopback
# ---------------------------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes


@dataclass
class ServerState:
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    streamed: int = 0
    stream_done: threading.Event = field(default_factory=threading.Event)
    sni: list[str | None] = field(default_factory=list)


class RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: the client hanging up mid-response is what several tests do on purpose."""


def gzipped_zeros(n: int) -> bytes:
    """`n` zeros gzipped a megabyte at a time, so that the server never holds them inflated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    megabyte = b"0" * (1 << 20)
    parts = [compressor.compress(megabyte) for _ in range(n >> 20)]
    parts += [compressor.compress(b"0" * (n % (1 << 20))), compressor.flush()]
    return b"".join(parts)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: object, **headers: str) -> None:
        self._reply(status, json.dumps(value).encode(), "application/json", **headers)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state = self.server.state
        state.seen.append(Seen(self.command, url.path, query, self.headers, body))
        if url.path == "/json":
            self._json(200, {"hello": "world", "n": 1})
        elif url.path == "/text":
            self._reply(200, b"hello, text", "text/plain; charset=utf-8")
        elif url.path == "/bad-json":
            self._reply(200, b"{not json", "application/json")
        elif url.path == "/echo":
            self._json(
                200,
                {
                    "method": self.command,
                    "query": query,
                    "content_type": self.headers.get("Content-Type"),
                    "body": body.decode(),
                },
            )
        elif url.path == "/echo-auth":  # a careless server that echoes the credentials back
            status = int(query.get("status", ["200"])[0])
            seen = {
                "authorization": self.headers.get("Authorization"),
                "x-api-key": self.headers.get("X-Api-Key"),
            }
            self._json(status, seen, X_Echo=json.dumps(seen))
        elif url.path == "/gzip":  # `n` zeros, gzipped: a bomb for a large n
            self._reply(
                200, gzipped_zeros(int(query["n"][0])), "text/plain", Content_Encoding="gzip"
            )
        elif url.path == "/status/404":
            self._json(404, {"error": "not here"})
        elif url.path == "/redirect":
            self._reply(302, b"", "text/plain", Location=query["to"][0])
        elif url.path == "/sized":
            self._sized(int(query["n"][0]), with_length="nolength" not in query)
        elif url.path == "/endless":
            self._endless()
        elif url.path == "/slow":
            state.release.wait(10)
            self._json(200, {"late": True})
        else:
            self._json(404, {"error": "no route"})

    def _sized(self, size: int, *, with_length: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if with_length:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        try:
            sent = 0
            while sent < size:
                chunk = b"x" * min(64 * 1024, size - sent)
                self.wfile.write(chunk)
                sent += len(chunk)
        except OSError:
            self.close_connection = True

    def _endless(self) -> None:
        """Streams up to 64 MiB without a length, counting what the client took."""
        state = self.server.state
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        chunk = b"y" * (64 * 1024)
        try:
            while state.streamed < 64 * MIB:
                self.wfile.write(chunk)
                self.wfile.flush()
                state.streamed += len(chunk)
        except OSError:
            pass
        finally:
            state.stream_done.set()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle  # noqa: N815


@dataclass
class Server:
    port: int
    state: ServerState

    def url(self, path: str, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [seen.path for seen in self.state.seen]


@contextlib.contextmanager
def serve(ssl_context: ssl.SSLContext | None = None) -> Iterator[Server]:
    httpd = RecordingServer(("127.0.0.1", 0), Handler)
    httpd.state = ServerState()
    if ssl_context is not None:
        httpd.socket = ssl_context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield Server(httpd.server_address[1], httpd.state)
    finally:
        httpd.state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def _server() -> Iterator[Server]:
    with serve() as server:
        yield server


@pytest.fixture
def server(_server: Server) -> Server:
    """The module's loopback server, with a fresh record of what it saw."""
    state = _server.state
    state.seen.clear()
    state.streamed = 0
    state.stream_done.clear()
    state.release.clear()
    return _server


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Runners, calls, resolvers
# ---------------------------------------------------------------------------------------------

MakeRunner = Callable[..., HttpRequestRunner]


@pytest.fixture
async def make_runner() -> AsyncIterator[MakeRunner]:
    runners: list[HttpRequestRunner] = []

    def make(**kwargs: Any) -> HttpRequestRunner:
        runner = HttpRequestRunner(**kwargs)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        await runner.aclose()


@pytest.fixture
def runner(make_runner: MakeRunner) -> HttpRequestRunner:
    """Guard off: the functional tests talk to the loopback server."""
    return make_runner(allow_private_network=True)


def call(credential: ResolvedSecret | None = None, **parameters: Any) -> NodeCall:
    node = Node(id="fetch", type="http.request", parameters=dict(parameters))
    return NodeCall(node=node, parameters=parameters, credential=credential)


def bearer() -> ResolvedSecret:
    return ResolvedSecret("http_bearer", SecretData({"token": TOKEN}))


def basic() -> ResolvedSecret:
    return ResolvedSecret("http_basic", SecretData({"username": USERNAME, "password": PASSWORD}))


def api_key_header() -> ResolvedSecret:
    return ResolvedSecret("http_header", SecretData({"name": "X-Api-Key", "value": HEADER_SECRET}))


class FakeResolver:
    """A DNS that answers from a table and counts the questions."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.questions: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.questions.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


async def failure(runner: HttpRequestRunner, node_call: NodeCall) -> NodeFailedError:
    with pytest.raises(NodeFailedError) as raised:
        await runner.run(node_call)
    return raised.value


# ---------------------------------------------------------------------------------------------
# Requests and responses
# ---------------------------------------------------------------------------------------------


async def test_a_json_response_body_is_parsed(runner: HttpRequestRunner, server: Server) -> None:
    output = await runner.run(call(method="GET", url=server.url("/json")))

    assert output["status"] == 200
    assert output["headers"]["content-type"] == "application/json"
    assert all(name == name.lower() for name in output["headers"])
    assert output["body"] == {"hello": "world", "n": 1}


async def test_a_text_response_body_is_text(runner: HttpRequestRunner, server: Server) -> None:
    output = await runner.run(call(method="GET", url=server.url("/text")))

    assert output["body"] == "hello, text"


async def test_a_json_response_that_does_not_parse_is_text(
    runner: HttpRequestRunner, server: Server
) -> None:
    output = await runner.run(call(method="GET", url=server.url("/bad-json")))

    assert output["body"] == "{not json"


async def test_an_object_body_is_sent_as_json(runner: HttpRequestRunner, server: Server) -> None:
    payload = {"a": 1, "b": [True, None, "é"]}

    output = await runner.run(call(method="POST", url=server.url("/echo"), body=payload))

    assert output["body"]["content_type"] == "application/json"
    assert json.loads(server.state.seen[0].body) == payload


async def test_a_string_body_is_sent_as_plain_text(
    runner: HttpRequestRunner, server: Server
) -> None:
    output = await runner.run(call(method="PUT", url=server.url("/echo"), body="just text"))

    assert output["body"]["method"] == "PUT"
    assert output["body"]["content_type"].startswith("text/plain")
    assert output["body"]["body"] == "just text"


async def test_no_body_parameter_sends_no_body(runner: HttpRequestRunner, server: Server) -> None:
    await runner.run(call(method="POST", url=server.url("/echo")))

    assert server.state.seen[0].body == b""
    assert server.state.seen[0].headers.get("Content-Type") is None


async def test_the_query_parameter_is_merged_into_the_urls_query(
    runner: HttpRequestRunner, server: Server
) -> None:
    url = server.url("/echo?keep=yes&a=1")

    output = await runner.run(call(method="GET", url=url, query={"a": "2", "b": "x y&z"}))

    assert output["body"]["query"] == {"keep": ["yes"], "a": ["2"], "b": ["x y&z"]}


async def test_parameter_headers_are_sent(runner: HttpRequestRunner, server: Server) -> None:
    await runner.run(call(method="GET", url=server.url("/json"), headers={"X-Trace": "abc"}))

    assert server.state.seen[0].headers.get("X-Trace") == "abc"


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------


async def test_a_bearer_credential_is_sent_as_an_authorization_header(
    runner: HttpRequestRunner, server: Server
) -> None:
    await runner.run(call(bearer(), method="GET", url=server.url("/json")))

    assert server.state.seen[0].headers.get_all("Authorization") == [f"Bearer {TOKEN}"]


async def test_a_basic_credential_is_sent_as_basic_authorization(
    runner: HttpRequestRunner, server: Server
) -> None:
    await runner.run(call(basic(), method="GET", url=server.url("/json")))

    expected = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert server.state.seen[0].headers.get_all("Authorization") == [f"Basic {expected}"]


async def test_a_header_credential_is_sent_as_its_header(
    runner: HttpRequestRunner, server: Server
) -> None:
    await runner.run(call(api_key_header(), method="GET", url=server.url("/json")))

    assert server.state.seen[0].headers.get_all("X-Api-Key") == [HEADER_SECRET]


@pytest.mark.parametrize(
    ("credential", "header", "expected"),
    [
        pytest.param(bearer, "authorization", f"Bearer {TOKEN}", id="a bearer token wins"),
        pytest.param(api_key_header, "x-api-key", HEADER_SECRET, id="a header credential wins"),
    ],
)
async def test_a_credential_header_overrides_a_parameter_header_of_the_same_name(
    runner: HttpRequestRunner,
    server: Server,
    credential: Callable[[], ResolvedSecret],
    header: str,
    expected: str,
) -> None:
    headers = {header.upper(): "from-the-parameters", "X-Other": "kept"}

    await runner.run(call(credential(), method="GET", url=server.url("/json"), headers=headers))

    seen = server.state.seen[0].headers
    assert seen.get_all(header) == [expected]
    assert seen.get("X-Other") == "kept"


async def test_a_credential_echoed_by_the_server_is_masked_in_the_output(
    runner: HttpRequestRunner, server: Server
) -> None:
    output = await runner.run(call(bearer(), method="GET", url=server.url("/echo-auth")))

    assert output["body"]["authorization"] == "Bearer ***"
    assert TOKEN not in json.dumps(output)


# ---------------------------------------------------------------------------------------------
# Failures
# ---------------------------------------------------------------------------------------------


async def test_a_non_2xx_answer_fails_with_http_status_and_the_response_as_output(
    runner: HttpRequestRunner, server: Server
) -> None:
    error = await failure(runner, call(method="GET", url=server.url("/status/404")))

    assert error.code == "http_status"
    assert "404" in error.message
    response: Any = error.output
    assert response["status"] == 404
    assert response["body"] == {"error": "not here"}


async def test_a_redirect_is_not_followed(runner: HttpRequestRunner, server: Server) -> None:
    target = server.url("/json")

    error = await failure(runner, call(method="GET", url=server.url(f"/redirect?to={target}")))

    assert error.code == "http_status"
    response: Any = error.output
    assert response["status"] == 302
    assert response["headers"]["location"] == target
    assert server.paths() == ["/redirect"]


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"/sized?n={MIB + 1}", id="announced by its content-length"),
        pytest.param(f"/sized?n={MIB + 1}&nolength", id="without a content-length"),
    ],
)
async def test_a_response_over_one_mib_fails_with_response_too_large(
    runner: HttpRequestRunner, server: Server, path: str
) -> None:
    error = await failure(runner, call(method="GET", url=server.url(path)))

    assert error.code == "response_too_large"
    assert error.output is None


async def test_a_response_of_exactly_the_cap_is_accepted(
    make_runner: MakeRunner, server: Server
) -> None:
    runner = make_runner(allow_private_network=True, max_response_bytes=1000)

    output = await runner.run(call(method="GET", url=server.url("/sized?n=1000&nolength")))
    error = await failure(runner, call(method="GET", url=server.url("/sized?n=1001&nolength")))

    assert output["body"] == "x" * 1000
    assert error.code == "response_too_large"


async def test_an_endless_response_is_abandoned_past_the_cap(
    runner: HttpRequestRunner, server: Server
) -> None:
    error = await failure(runner, call(method="GET", url=server.url("/endless")))

    assert error.code == "response_too_large"
    assert server.state.stream_done.wait(10)
    # The runner stopped reading and closed the connection: the server could hand over no more
    # than the cap plus what the kernel buffers, far from the 64 MiB it meant to send.
    assert server.state.streamed < 32 * MIB


async def test_a_slow_server_fails_with_timeout(runner: HttpRequestRunner, server: Server) -> None:
    started = time.monotonic()

    error = await failure(runner, call(method="GET", url=server.url("/slow"), timeout_s=0.3))

    assert error.code == "timeout"
    assert time.monotonic() - started < 3


async def test_a_refused_connection_fails_with_connection_failed(
    runner: HttpRequestRunner, closed_port: int
) -> None:
    error = await failure(runner, call(method="GET", url=f"http://127.0.0.1:{closed_port}/"))

    assert error.code == "connection_failed"


async def test_an_unresolvable_name_fails_with_connection_failed(
    make_runner: MakeRunner,
) -> None:
    runner = make_runner(allow_private_network=True, resolver=FakeResolver({}))

    error = await failure(runner, call(method="GET", url="http://nowhere.test/"))

    assert error.code == "connection_failed"


@pytest.mark.parametrize(
    "parameters",
    [
        pytest.param({"method": "GET", "url": "ftp://example.com/"}, id="an ftp url"),
        pytest.param({"method": "GET", "url": "http:///path"}, id="a url without a host"),
        pytest.param(
            {"method": "GET", "url": "http://0177.0.0.1/"},
            id="a dotted quad with an octal part (httpx refuses it)",
        ),
        pytest.param({"method": "BREW", "url": "http://example.com/"}, id="an unknown method"),
        pytest.param(
            {"method": "GET", "url": "http://example.com/", "timeout_s": 31},
            id="a timeout over 30 seconds",
        ),
        pytest.param(
            {"method": "GET", "url": "http://example.com/", "headers": {"X-A": "a\r\nB: b"}},
            id="a header value with a line break",
        ),
        pytest.param(
            {"method": "GET", "url": "http://example.com/", "query": {"a": 1}},
            id="a query value that is not a string",
        ),
    ],
)
async def test_invalid_parameters_are_refused_before_any_request(
    runner: HttpRequestRunner, parameters: dict[str, Any]
) -> None:
    error = await failure(runner, call(**parameters))

    assert error.code == "invalid_parameters"


@pytest.mark.parametrize(
    "parameters",
    [
        pytest.param(
            {"headers": {f"X-{i}": "v" for i in range(MAX_HEADERS + 1)}}, id="too many headers"
        ),
        pytest.param(
            {"query": {f"q{i}": "v" for i in range(MAX_QUERY_PARAMETERS + 1)}},
            id="too many query parameters",
        ),
        pytest.param({"path": "/json?" + "a" * MAX_URL_LENGTH}, id="a url that is too long"),
    ],
)
async def test_parameters_over_the_catalogues_limits_are_refused_before_any_request(
    runner: HttpRequestRunner, server: Server, parameters: dict[str, Any]
) -> None:
    url = server.url(parameters.pop("path", "/json"))

    error = await failure(runner, call(method="GET", url=url, **parameters))

    assert error.code == "invalid_parameters"
    assert server.paths() == []


# ---------------------------------------------------------------------------------------------
# No credential value in any error or output
# ---------------------------------------------------------------------------------------------

SECRETS = (TOKEN, PASSWORD, base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode())


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        dumped = text if isinstance(text, str) else json.dumps(text, default=str)
        for secret in (*SECRETS, HEADER_SECRET):
            assert secret not in dumped


@pytest.mark.parametrize("credential", [bearer, basic, api_key_header])
@pytest.mark.parametrize(
    ("path", "timeout_s", "guard_on", "code"),
    [
        pytest.param("/echo-auth?status=401", 10, False, "http_status", id="an echoing 401"),
        pytest.param("/status/404", 10, False, "http_status", id="a 404"),
        pytest.param(f"/sized?n={MIB + 1}", 10, False, "response_too_large", id="too large"),
        pytest.param("/slow", 0.2, False, "timeout", id="a timeout"),
        pytest.param("/json", 10, True, "ssrf_blocked", id="a blocked address"),
        pytest.param(None, 10, False, "connection_failed", id="a refused connection"),
    ],
)
async def test_no_credential_value_appears_in_an_error_or_its_output(
    make_runner: MakeRunner,
    server: Server,
    closed_port: int,
    credential: Callable[[], ResolvedSecret],
    path: str | None,
    timeout_s: float,
    guard_on: bool,
    code: str,
) -> None:
    runner = make_runner(allow_private_network=not guard_on)
    url = server.url(path) if path else f"http://127.0.0.1:{closed_port}/"

    error = await failure(runner, call(credential(), method="GET", url=url, timeout_s=timeout_s))

    assert error.code == code
    assert_no_secret(error.message, str(error), repr(error), error.output)


@pytest.mark.parametrize("credential", [bearer, basic, api_key_header])
async def test_no_credential_value_appears_in_a_successful_output(
    runner: HttpRequestRunner, server: Server, credential: Callable[[], ResolvedSecret]
) -> None:
    output = await runner.run(call(credential(), method="GET", url=server.url("/echo-auth")))

    assert server.state.seen[0].headers.get("Authorization") or server.state.seen[0].headers.get(
        "X-Api-Key"
    )
    assert_no_secret(output)


# ---------------------------------------------------------------------------------------------
# SSRF guard
# ---------------------------------------------------------------------------------------------

PUBLIC_IP = "93.184.215.14"


@pytest.mark.parametrize(
    ("host", "answers"),
    [
        pytest.param("127.0.0.1", None, id="the IPv4 loopback address is refused"),
        pytest.param("localhost", None, id="localhost is refused after real resolution"),
        pytest.param("[::1]", None, id="the IPv6 loopback address is refused"),
        pytest.param("10.0.0.1", None, id="a 10/8 private address is refused"),
        pytest.param("172.16.0.1", None, id="a 172.16/12 private address is refused"),
        pytest.param("192.168.1.1", None, id="a 192.168/16 private address is refused"),
        pytest.param("169.254.169.254", None, id="the cloud metadata address is refused"),
        pytest.param("100.64.0.1", None, id="a carrier-grade NAT address is refused"),
        pytest.param("0.0.0.0", None, id="the unspecified address is refused"),  # noqa: S104
        pytest.param("[::ffff:127.0.0.1]", None, id="an IPv4-mapped loopback is refused"),
        pytest.param("[fd00:ec2::254]", None, id="the IPv6 metadata address is refused"),
        pytest.param("[fe80::1]", None, id="an IPv6 link-local address is refused"),
        pytest.param("224.0.0.1", None, id="a multicast address is refused"),
        pytest.param("2130706433", None, id="loopback written as a decimal number is refused"),
        pytest.param("0x7f000001", None, id="loopback written in hex is refused"),
        pytest.param("0177.1", None, id="loopback written in octal is refused"),
        pytest.param("127.1", None, id="loopback in short form is refused"),
        pytest.param(
            "evil.test",
            {"evil.test": ["127.0.0.1"]},
            id="a name that resolves to loopback is refused",
        ),
        pytest.param(
            "mixed.test",
            {"mixed.test": [PUBLIC_IP, "10.0.0.5"]},
            id="a name with one private address among public ones is refused",
        ),
        pytest.param(
            "mapped.test",
            {"mapped.test": ["::ffff:169.254.169.254"]},
            id="a name that resolves to a mapped metadata address is refused",
        ),
    ],
)
async def test_the_guard_refuses_non_public_addresses(
    make_runner: MakeRunner,
    server: Server,
    host: str,
    answers: dict[str, list[str]] | None,
) -> None:
    resolver = FakeResolver(answers) if answers is not None else None
    runner = make_runner(resolver=resolver)

    error = await failure(runner, call(method="GET", url=server.url("/json", host=host)))

    assert error.code == "ssrf_blocked"
    assert server.paths() == []


async def test_a_redirect_to_loopback_is_not_followed(
    runner: HttpRequestRunner, server: Server
) -> None:
    target = f"http://127.0.0.1:{server.port}/loopback-target"

    error = await failure(runner, call(method="GET", url=server.url(f"/redirect?to={target}")))

    assert error.code == "http_status"
    response: Any = error.output
    assert response["status"] == 302
    assert "/loopback-target" not in server.paths()


async def test_the_request_goes_to_the_checked_address_without_a_second_lookup(
    make_runner: MakeRunner, server: Server
) -> None:
    resolver = FakeResolver({"public.test": ["127.0.0.1"]})
    runner = make_runner(allow_private_network=True, resolver=resolver)

    output = await runner.run(call(method="GET", url=server.url("/json", host="public.test")))

    assert output["status"] == 200
    assert server.state.seen[0].headers.get("Host") == f"public.test:{server.port}"
    # `public.test` exists in no DNS: reaching the server proves the connection used the one
    # checked answer.
    assert resolver.questions == [("public.test", server.port)]


async def test_the_connection_goes_to_the_checked_address_not_where_the_name_resolves(
    make_runner: MakeRunner, server: Server
) -> None:
    # `localhost` really resolves to 127.0.0.1, where the server listens; the checked answer is
    # ::1, where it does not. Only a transport that resolves again could reach the server.
    resolver = FakeResolver({"localhost": ["::1"]})
    runner = make_runner(allow_private_network=True, resolver=resolver)

    error = await failure(runner, call(method="GET", url=server.url("/json", host="localhost")))

    assert error.code == "connection_failed"
    assert server.paths() == []


@pytest.fixture
async def transport_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=PinnedTransport(ssl.create_default_context()), trust_env=False
    ) as client:
        yield client


async def test_the_transport_connects_a_pinned_name_to_its_pinned_address(
    transport_client: httpx.AsyncClient, server: Server
) -> None:
    with pinned("pinned.test", ("127.0.0.1",)):
        response = await transport_client.get(server.url("/json", host="pinned.test"))

    assert response.json() == {"hello": "world", "n": 1}
    assert server.state.seen[0].headers.get("Host") == f"pinned.test:{server.port}"


@pytest.mark.parametrize(
    "pinned_host",
    [
        pytest.param(None, id="with no pin at all"),
        pytest.param("other.test", id="with a pin for another host only"),
    ],
)
async def test_the_transport_refuses_to_connect_a_host_without_a_pin(
    transport_client: httpx.AsyncClient, server: Server, pinned_host: str | None
) -> None:
    pins = pinned(pinned_host, ("127.0.0.1",)) if pinned_host else contextlib.nullcontext()

    with pins, pytest.raises(httpx.ConnectError, match="no checked address"):
        await transport_client.get(server.url("/json"))

    assert server.paths() == []


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        pytest.param("8.8.8.8", False, id="a public IPv4 address passes"),
        pytest.param("2606:4700:4700::1111", False, id="a public IPv6 address passes"),
        pytest.param("2002:7f00:1::", True, id="a 6to4 address of loopback is refused"),
        pytest.param("64:ff9b::a00:1", True, id="a NAT64 address of a private one is refused"),
        pytest.param("::ffff:10.0.0.1", True, id="a mapped private address is refused"),
        pytest.param("::127.0.0.1", True, id="an IPv4-compatible loopback is refused"),
        pytest.param("fc00::1", True, id="a unique-local address is refused"),
        pytest.param("255.255.255.255", True, id="the broadcast address is refused"),
        pytest.param("240.0.0.1", True, id="a reserved address is refused"),
    ],
)
def test_which_addresses_the_guard_refuses(address: str, blocked: bool) -> None:
    assert is_blocked_address(ipaddress.ip_address(address)) is blocked


# ---------------------------------------------------------------------------------------------
# TLS keeps the original host name
# ---------------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A private CA and a server certificate for `public.test` only."""
    folder = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FlowBuilder test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "public.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("public.test")]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain_file = folder / "server.pem"
    chain_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(chain_file)
    return Pki(ca_file, server_context)


@pytest.fixture(scope="module")
def tls_server(pki: Pki) -> Iterator[Server]:
    with serve(pki.server_context) as server:
        sni = server.state.sni
        pki.server_context.sni_callback = lambda _sock, name, _ctx: sni.append(name)
        yield server


@pytest.fixture
def tls_runner(make_runner: MakeRunner, pki: Pki, tls_server: Server) -> HttpRequestRunner:
    tls_server.state.seen.clear()
    tls_server.state.sni.clear()
    resolver = FakeResolver({"public.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    return make_runner(
        allow_private_network=True,
        resolver=resolver,
        ssl_context=ssl.create_default_context(cafile=pki.ca_file),
    )


async def test_tls_verifies_the_certificate_for_the_original_host_name(
    tls_runner: HttpRequestRunner, tls_server: Server
) -> None:
    url = tls_server.url("/json", host="public.test", scheme="https")

    output = await tls_runner.run(call(method="GET", url=url))

    assert output["body"] == {"hello": "world", "n": 1}
    assert tls_server.state.sni == ["public.test"]
    assert tls_server.state.seen[0].headers.get("Host") == f"public.test:{tls_server.port}"


@pytest.mark.parametrize(
    "host",
    [
        pytest.param("other.test", id="a name the certificate does not cover is refused"),
        pytest.param("127.0.0.1", id="the bare address the name resolved to is refused"),
    ],
)
async def test_tls_refuses_a_certificate_for_another_name(
    tls_runner: HttpRequestRunner, tls_server: Server, host: str
) -> None:
    url = tls_server.url("/json", host=host, scheme="https")

    error = await failure(tls_runner, call(method="GET", url=url))

    assert error.code == "connection_failed"
    assert "certificate" in error.message
    assert tls_server.state.seen == []


def test_a_context_that_skips_host_name_checks_is_refused() -> None:
    context = ssl.create_default_context()
    context.check_hostname = False

    with pytest.raises(ValueError, match="host names"):
        HttpRequestRunner(ssl_context=context)


async def test_a_gzipped_response_is_decoded_and_the_node_asks_only_for_what_it_decodes(
    runner: HttpRequestRunner, server: Server
) -> None:
    output = await runner.run(call(method="GET", url=server.url("/gzip?n=2000")))

    assert output["body"] == "0" * 2000
    assert server.state.seen[-1].headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_compression_bomb_is_refused_without_inflating_it(
    runner: HttpRequestRunner, server: Server
) -> None:
    """200 MB of zeros are about 200 KB of gzip: decoding a received chunk whole (as httpx
    does) would allocate hundreds of megabytes before any size check could see them."""
    tracemalloc.start()
    try:
        error = await failure(runner, call(method="GET", url=server.url("/gzip?n=200000000")))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.code == "response_too_large"
    assert peak < 32 * 1024 * 1024, f"{peak} bytes allocated while reading the body"
