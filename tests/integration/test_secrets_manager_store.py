"""SecretsManagerSecretStore against a local moto server: what the contract suite cannot see
(names, tags, the raw secret, foreign secrets, pagination), and an endpoint that is down or
failing."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aioboto3
import pytest
from botocore.config import Config

from flowbuilder_adapters.secrets import aws
from flowbuilder_adapters.secrets.aws import (
    CREATED_TAG,
    CREDENTIAL_TAG,
    DEPLOYMENT_TAG,
    OWNER_TAG,
    SecretsManagerSecretStore,
    secrets_manager_client,
)
from flowbuilder_core.credentials.errors import SecretNotFoundError, SecretUnreadableError
from flowbuilder_core.credentials.model import CredentialId, SecretBinding, SecretData, SecretRef
from flowbuilder_core.shared.errors import DependencyUnavailableError
from flowbuilder_core.shared.ids import UserId

from support.aws_fixtures import AWS_REGION

CANARY = "canary-3f9a-secret-value"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# A dead or failing endpoint must answer within this (connect timeout 1 s, no retries).
FAST_FAILURE_S = 3.0


class SteppingClock:
    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now


def make_binding(**overrides: Any) -> SecretBinding:
    fields: dict[str, Any] = {"owner_id": UserId("user_owner"), "credential_id": uuid.uuid4()}
    fields.update(overrides)
    return SecretBinding(fields["owner_id"], CredentialId(fields["credential_id"]))


def make_data(**overrides: str) -> SecretData:
    return SecretData({"token": CANARY, **overrides})


def make_prefix() -> str:
    return f"flowbuilder-it/{uuid.uuid4().hex}/"


def fail_fast_config() -> Config:
    # `total_max_attempts` counts the first try; `max_attempts` would count retries only.
    return Config(
        connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 1}
    )


@pytest.fixture
async def client(moto_endpoint: str) -> AsyncIterator[Any]:
    async with secrets_manager_client(aioboto3.Session(), AWS_REGION) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    return make_prefix()


@pytest.fixture
def store(client: Any, prefix: str) -> SecretsManagerSecretStore:
    return SecretsManagerSecretStore(client, prefix=prefix, clock=SteppingClock(T0))


# ---------------------------------------------------------------------------------------------
# What lands in Secrets Manager
# ---------------------------------------------------------------------------------------------


async def test_the_client_reaches_the_endpoint_from_botocores_own_variable(
    moto_endpoint: str,
    client: Any,
) -> None:
    assert client.meta.endpoint_url == moto_endpoint


async def test_a_secret_is_tagged_with_its_deployment_owner_and_credential(
    store: SecretsManagerSecretStore, client: Any, prefix: str
) -> None:
    binding = make_binding()

    ref = await store.put(binding, make_data(user="alice"))

    described = await client.describe_secret(SecretId=ref.value)
    tags = {tag["Key"]: tag["Value"] for tag in described["Tags"]}
    assert tags[DEPLOYMENT_TAG] == prefix
    assert tags[OWNER_TAG] == "user_owner"
    assert tags[CREDENTIAL_TAG] == str(binding.credential_id)
    assert ref.value == described["ARN"]
    assert described["Name"].startswith(f"{prefix}user_owner/{binding.credential_id}/")
    raw = await client.get_secret_value(SecretId=ref.value)
    assert raw["SecretString"] == json.dumps({"token": CANARY, "user": "alice"}).replace(" ", "")


async def test_an_owner_id_outside_the_allowed_characters_is_hashed_and_still_binds(
    store: SecretsManagerSecretStore, client: Any
) -> None:
    binding = make_binding(owner_id=UserId("ünïcödé owner/with#odd|chars"))

    ref = await store.put(binding, make_data())

    described = await client.describe_secret(SecretId=ref.value)
    tags = {tag["Key"]: tag["Value"] for tag in described["Tags"]}
    assert tags[OWNER_TAG].startswith("sha256:")
    assert "#" not in described["Name"]
    assert (await store.get(ref, binding)).values["token"] == CANARY
    with pytest.raises(SecretUnreadableError):
        await store.get(ref, make_binding(owner_id=UserId("user_owner")))


async def test_a_secret_retagged_to_another_owner_does_not_read_back(
    store: SecretsManagerSecretStore, client: Any
) -> None:
    binding = make_binding()
    ref = await store.put(binding, make_data())

    await client.tag_resource(
        SecretId=ref.value, Tags=[{"Key": OWNER_TAG, "Value": "user_intruder"}]
    )

    with pytest.raises(SecretUnreadableError):
        await store.get(ref, binding)


async def test_a_secret_without_json_values_is_unreadable_and_its_text_does_not_show(
    store: SecretsManagerSecretStore, client: Any
) -> None:
    binding = make_binding()
    ref = await store.put(binding, make_data())
    await client.put_secret_value(SecretId=ref.value, SecretString=f"not json {CANARY}")

    with pytest.raises(SecretUnreadableError) as raised:
        await store.get(ref, binding)

    assert CANARY not in repr(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


async def test_a_secret_marked_for_deletion_is_not_found_and_not_listed(
    store: SecretsManagerSecretStore, client: Any
) -> None:
    binding = make_binding()
    ref = await store.put(binding, make_data())

    await client.delete_secret(SecretId=ref.value, RecoveryWindowInDays=7)

    with pytest.raises(SecretNotFoundError):
        await store.get(ref, binding)
    assert list(await store.unreferenced(set(), datetime(2100, 1, 1, tzinfo=UTC))) == []
    await store.delete(ref)  # already on its way out: no error either way
    await store.delete(ref)


async def test_a_deleted_secret_can_be_restored_within_the_recovery_window(
    store: SecretsManagerSecretStore, client: Any
) -> None:
    binding = make_binding()
    ref = await store.put(binding, make_data())

    await store.delete(ref)

    described = await client.describe_secret(SecretId=ref.value)
    assert described.get("DeletedDate") is not None
    with pytest.raises(SecretNotFoundError):
        await store.get(ref, binding)
    await client.restore_secret(SecretId=ref.value)
    assert (await store.get(ref, binding)).values["token"] == CANARY


async def test_a_secret_outside_the_prefix_is_neither_read_nor_deleted_nor_listed(
    store: SecretsManagerSecretStore, client: Any, prefix: str
) -> None:
    foreign = await client.create_secret(
        Name=f"{prefix.rstrip('/')}-other/{uuid.uuid4()}", SecretString=json.dumps({"k": "v"})
    )
    unrelated = SecretsManagerSecretStore(client, prefix=make_prefix())
    theirs = await unrelated.put(make_binding(), make_data())
    ref = SecretRef(foreign["ARN"])

    with pytest.raises(SecretNotFoundError):
        await store.get(ref, make_binding())
    with pytest.raises(SecretNotFoundError):
        await store.get(theirs, make_binding())
    await store.delete(ref)
    await store.delete(theirs)

    assert (await client.describe_secret(SecretId=ref.value)).get("DeletedDate") is None
    assert (await client.describe_secret(SecretId=theirs.value)).get("DeletedDate") is None
    assert list(await store.unreferenced(set(), datetime(2100, 1, 1, tzinfo=UTC))) == []


async def test_unreferenced_reads_every_page(
    store: SecretsManagerSecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(aws, "LIST_PAGE_SIZE", 2)
    refs = [await store.put(make_binding(), make_data()) for _ in range(5)]

    found = await store.unreferenced({refs[0]}, datetime(2100, 1, 1, tzinfo=UTC))

    assert sorted(ref.value for ref in found) == sorted(ref.value for ref in refs[1:])


async def test_unreferenced_dates_secrets_without_the_created_tag_by_their_creation(
    store: SecretsManagerSecretStore, client: Any, prefix: str
) -> None:
    created = await client.create_secret(
        Name=f"{prefix}undated/{uuid.uuid4()}",
        SecretString=json.dumps({"k": "v"}),
        Tags=[{"Key": DEPLOYMENT_TAG, "Value": prefix}],
    )
    now = datetime.now(UTC)

    assert list(await store.unreferenced(set(), now - timedelta(hours=1))) == []
    found = await store.unreferenced(set(), now + timedelta(hours=1))
    assert [ref.value for ref in found] == [created["ARN"]]


async def test_a_secret_under_the_prefix_tagged_for_another_deployment_is_left_alone(
    store: SecretsManagerSecretStore, client: Any, prefix: str
) -> None:
    # A deployment whose prefix extends ours (`{prefix}eu/`) names its secrets under ours.
    nested = SecretsManagerSecretStore(client, prefix=f"{prefix}eu/", clock=SteppingClock(T0))
    binding = make_binding()
    theirs = await nested.put(binding, make_data())

    with pytest.raises(SecretNotFoundError):
        await store.get(theirs, binding)
    await store.delete(theirs)
    found = await store.unreferenced(set(), datetime(2100, 1, 1, tzinfo=UTC))

    assert found == []
    assert (await client.describe_secret(SecretId=theirs.value)).get("DeletedDate") is None
    assert (await nested.get(theirs, binding)).values["token"] == CANARY


async def test_a_secret_from_before_the_deployment_tag_reads_back_but_is_never_swept(
    store: SecretsManagerSecretStore, client: Any, prefix: str
) -> None:
    binding = make_binding()
    created = await client.create_secret(
        Name=f"{prefix}user_owner/{binding.credential_id}/{uuid.uuid4()}",
        SecretString=json.dumps({"token": CANARY}),
        Tags=[
            {"Key": OWNER_TAG, "Value": "user_owner"},
            {"Key": CREDENTIAL_TAG, "Value": str(binding.credential_id)},
            {"Key": CREATED_TAG, "Value": T0.isoformat()},
        ],
    )
    ref = SecretRef(created["ARN"])

    found = await store.unreferenced(set(), datetime(2100, 1, 1, tzinfo=UTC))

    assert found == []
    assert (await store.get(ref, binding)).values["token"] == CANARY
    await store.delete(ref)
    assert (await client.describe_secret(SecretId=ref.value)).get("DeletedDate") is not None


def test_a_prefix_outside_the_allowed_name_characters_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix"):
        SecretsManagerSecretStore(object(), prefix="bad prefix/")


# ---------------------------------------------------------------------------------------------
# An endpoint that is down or failing
# ---------------------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class _FailingHandler(BaseHTTPRequestHandler):
    """Answers every request with the server's configured status and AWS JSON error type."""

    server: _FailingServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"__type": self.server.error_type, "message": "failing on purpose"})
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-ErrorType", self.server.error_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return


class _FailingServer(ThreadingHTTPServer):
    status = 500
    error_type = "InternalServiceError"


@pytest.fixture
def failing_server() -> Iterator[_FailingServer]:
    server = _FailingServer(("127.0.0.1", 0), _FailingHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


async def assert_every_call_is_unavailable(endpoint: str) -> None:
    session = aioboto3.Session()
    async with session.client(
        "secretsmanager", region_name=AWS_REGION, endpoint_url=endpoint, config=fail_fast_config()
    ) as client:
        store = SecretsManagerSecretStore(client, prefix="flowbuilder/credentials/")
        ref = SecretRef(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
            f"flowbuilder/credentials/user_owner/{uuid.uuid4()}/{uuid.uuid4()}-AbCdEf"
        )
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "put": lambda: store.put(make_binding(), make_data()),
            "get": lambda: store.get(ref, make_binding()),
            "delete": lambda: store.delete(ref),
            "unreferenced": lambda: store.unreferenced(set(), T0),
        }
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(DependencyUnavailableError) as raised:
                await call()
            assert time.monotonic() - started < FAST_FAILURE_S, name
            assert str(raised.value) == "The secret store is unavailable."
            assert CANARY not in repr(raised.value)
            assert CANARY not in repr(raised.value.__cause__)


async def test_an_endpoint_that_is_down_makes_the_store_unavailable_quickly(
    moto_endpoint: str,
) -> None:
    await assert_every_call_is_unavailable(f"http://127.0.0.1:{closed_port()}")


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (500, "InternalServiceError"),
        (503, "ServiceUnavailable"),
        (400, "ThrottlingException"),
    ],
)
async def test_server_errors_and_throttling_make_the_store_unavailable(
    moto_endpoint: str,
    failing_server: _FailingServer,
    status: int,
    error_type: str,
) -> None:
    failing_server.status = status
    failing_server.error_type = error_type
    host, port = failing_server.server_address[:2]

    await assert_every_call_is_unavailable(f"http://{host!s}:{port}")


def test_the_client_helper_bounds_timeouts_and_retries() -> None:
    config = aws.default_client_config()

    assert config.connect_timeout <= 10
    assert config.read_timeout <= 30
    assert config.retries["total_max_attempts"] <= 5
