"""Secret values in AWS Secrets Manager: one secret per `put`, under this deployment's prefix and
tagged with the deployment, its owner and credential; the credential row keeps only the
secret's ARN."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import MappingProxyType
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from flowbuilder_core.credentials.errors import SecretNotFoundError, SecretUnreadableError
from flowbuilder_core.credentials.model import SecretBinding, SecretData, SecretRef
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.errors import DependencyUnavailableError

# Which deployment wrote a secret; its value is the deployment's prefix. Names alone cannot
# say: Secrets Manager matches a name filter by prefix, case-insensitively, so `a/` would list
# the secrets of a deployment under `a/b/` (or `A/`) too.
DEPLOYMENT_TAG = "flowbuilder:deployment"
OWNER_TAG = "flowbuilder:owner"
CREDENTIAL_TAG = "flowbuilder:credential"
# The store's clock, not the service's CreatedDate, dates a secret for `unreferenced`: the
# sweeper computes `before` from the same clock, as it does for the database-backed store.
CREATED_TAG = "flowbuilder:created"

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 10
MAX_ATTEMPTS = 3  # in all, the first try included
LIST_PAGE_SIZE = 100
# A deleted secret stays restorable (`RestoreSecret`) this long; 7 days is the least AWS allows.
# A mistaken delete or sweep is then an incident, not a loss.
RECOVERY_WINDOW_DAYS = 7

UNAVAILABLE = "The secret store is unavailable."

# Secrets Manager names allow A-Za-z0-9/_+=.@- ; tag values also allow spaces and ':'.
_NAME_PREFIX = re.compile(r"[A-Za-z0-9/_+=.@-]{1,256}")
_NAME_SAFE = re.compile(r"[A-Za-z0-9_+=.@-]{1,128}")
_TAG_SAFE = re.compile(r"[A-Za-z0-9 _.:/=+@-]{1,256}")
_HASHED = "sha256:"
_ARN = re.compile(r"arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.+)")

_THROTTLING = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalServiceError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
    }
)


def default_client_config() -> Config:
    """Bounded timeouts and retries: a request waits seconds, not minutes, for a dead endpoint."""
    return Config(
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
    )


def secrets_manager_client(
    session: aioboto3.Session, region: str, *, config: Config | None = None
) -> Any:
    """The async context manager of a Secrets Manager client. The endpoint is botocore's own
    business (`AWS_ENDPOINT_URL_SECRETS_MANAGER`), so none is passed here."""
    return session.client(
        "secretsmanager", region_name=region, config=config or default_client_config()
    )


class SecretsManagerSecretStore(SecretStore):
    """One secret per `put`, named `{prefix}{owner}/{credential id}/{uuid}` and tagged with the
    deployment (`prefix`), owner and credential id.

    - `prefix` is the deployment's own: no default, since two deployments sharing one would
      read and sweep each other's secrets. It also is the deployment tag's value.
    - `get` and `delete` act only on a secret under the prefix whose deployment tag is this
      prefix, or absent (written before the tag existed; its ARN came from this deployment's
      database). `get` reads a value back only for the binding in its tags.
    - `unreferenced` lists only secrets carrying this deployment's tag: an untagged secret is
      never swept, whatever its name.
    - `delete` schedules the deletion after `recovery_window_days` (7 to 30), never at once.

    `client` is an open aioboto3 Secrets Manager client (see `secrets_manager_client`).
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str,
        clock: Clock | None = None,
        recovery_window_days: int = RECOVERY_WINDOW_DAYS,
    ) -> None:
        if not _NAME_PREFIX.fullmatch(prefix) or not _TAG_SAFE.fullmatch(prefix):
            raise ValueError("The secret name prefix may only contain A-Za-z0-9/_+=.@-")
        if not 7 <= recovery_window_days <= 30:
            raise ValueError("The recovery window is 7 to 30 days")
        self._client = client
        self._prefix = prefix
        self._clock: Clock = clock or SystemClock()
        self._recovery_window_days = recovery_window_days

    def __repr__(self) -> str:
        return f"SecretsManagerSecretStore(prefix={self._prefix!r})"

    async def put(self, binding: SecretBinding, data: SecretData) -> SecretRef:
        name = (
            f"{self._prefix}{_name_part(binding.owner_id)}/{binding.credential_id}/{uuid.uuid4()}"
        )
        tags = [
            {"Key": DEPLOYMENT_TAG, "Value": self._prefix},
            {"Key": OWNER_TAG, "Value": _tag_value(binding.owner_id)},
            {"Key": CREDENTIAL_TAG, "Value": str(binding.credential_id)},
            {"Key": CREATED_TAG, "Value": self._clock.now().isoformat()},
        ]
        secret = json.dumps(dict(data.values), separators=(",", ":"), sort_keys=True)
        # botocore fills in ClientRequestToken once, so its retries cannot create two secrets.
        async with _translated():
            response = await self._client.create_secret(Name=name, SecretString=secret, Tags=tags)
        return SecretRef(str(response["ARN"]))

    async def get(self, ref: SecretRef, binding: SecretBinding) -> SecretData:
        if not self._issued(ref):
            raise SecretNotFoundError()
        async with _translated():
            described = await self._client.describe_secret(SecretId=ref.value)
        if described.get("DeletedDate") is not None or not self._ours(described):
            raise SecretNotFoundError()
        tags = _tags(described)
        bound_to = (tags.get(OWNER_TAG), tags.get(CREDENTIAL_TAG))
        if bound_to != (_tag_value(binding.owner_id), str(binding.credential_id)):
            raise SecretUnreadableError("The secret belongs to another credential.")
        async with _translated():
            value = await self._client.get_secret_value(SecretId=str(described["ARN"]))
        return _decode(value.get("SecretString"))

    async def delete(self, ref: SecretRef) -> None:
        if not self._issued(ref):
            return
        try:
            async with _translated():
                described = await self._client.describe_secret(SecretId=ref.value)
            if described.get("DeletedDate") is not None or not self._ours(described):
                return
            async with _translated():
                await self._client.delete_secret(
                    SecretId=str(described["ARN"]),
                    RecoveryWindowInDays=self._recovery_window_days,
                )
        except SecretNotFoundError:
            return

    async def unreferenced(
        self, referenced: set[SecretRef], before: datetime
    ) -> Sequence[SecretRef]:
        found: list[SecretRef] = []
        request: dict[str, Any] = {
            # A prefix match, case-insensitive on AWS: `_tagged_ours` checks the exact prefix and
            # the deployment tag.
            "Filters": [{"Key": "name", "Values": [self._prefix]}],
            "MaxResults": LIST_PAGE_SIZE,
        }
        while True:
            async with _translated():
                page = await self._client.list_secrets(**request)
            for entry in page.get("SecretList", []):
                if entry.get("DeletedDate") is not None or not self._tagged_ours(entry):
                    continue
                ref = SecretRef(str(entry["ARN"]))
                created = _created_at(entry)
                if ref not in referenced and created is not None and created < before:
                    found.append(ref)
            token = page.get("NextToken")
            if not token:
                return found
            request["NextToken"] = token

    def _issued(self, ref: SecretRef) -> bool:
        """Whether the reference could be one of ours: an ARN of a secret under the prefix."""
        match = _ARN.fullmatch(ref.value)
        return match is not None and match["name"].startswith(self._prefix)

    def _ours(self, entry: Mapping[str, Any]) -> bool:
        """Under the prefix, and not tagged as another deployment's."""
        deployment = _tags(entry).get(DEPLOYMENT_TAG)
        return str(entry.get("Name", "")).startswith(self._prefix) and deployment in (
            None,
            self._prefix,
        )

    def _tagged_ours(self, entry: Mapping[str, Any]) -> bool:
        """Under the prefix and tagged as this deployment's: what the sweep may delete."""
        return str(entry.get("Name", "")).startswith(self._prefix) and (
            _tags(entry).get(DEPLOYMENT_TAG) == self._prefix
        )


@asynccontextmanager
async def _translated() -> AsyncIterator[None]:
    """Maps the client's failures onto the port's errors. Service messages never echo a
    SecretString, so they stay attached as causes for the logs."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = str(error.response.get("Error", {}).get("Message", "")).lower()
        if code == "ResourceNotFoundException" or (
            code == "InvalidRequestException" and "delet" in message
        ):
            raise SecretNotFoundError() from error
        if status >= 500 or code in _THROTTLING:
            raise DependencyUnavailableError(UNAVAILABLE) from error
        raise
    except (BotocoreConnectionError, HTTPClientError, NoCredentialsError) as error:
        raise DependencyUnavailableError(UNAVAILABLE) from error


def _name_part(owner: str) -> str:
    if _NAME_SAFE.fullmatch(owner):
        return owner
    return "sha256-" + hashlib.sha256(owner.encode()).hexdigest()


def _tag_value(owner: str) -> str:
    # A raw owner never starts with the hash marker, so a hashed owner cannot collide with one.
    if _TAG_SAFE.fullmatch(owner) and not owner.startswith(_HASHED):
        return owner
    return _HASHED + hashlib.sha256(owner.encode()).hexdigest()


def _tags(entry: Mapping[str, Any]) -> dict[str, str]:
    return {str(tag["Key"]): str(tag["Value"]) for tag in entry.get("Tags") or ()}


def _created_at(entry: Mapping[str, Any]) -> datetime | None:
    stamp = _tags(entry).get(CREATED_TAG)
    if stamp is not None:
        try:
            return datetime.fromisoformat(stamp)
        except ValueError:
            pass
    created = entry.get("CreatedDate")
    return created if isinstance(created, datetime) else None


def _decode(secret_string: object) -> SecretData:
    values: object = None
    if isinstance(secret_string, str):
        try:
            values = json.loads(secret_string)
        except ValueError:
            # Raised below, outside this block: a JSONDecodeError holds the whole document.
            values = None
    if not isinstance(values, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in values.items()
    ):
        raise SecretUnreadableError("The secret cannot be read.")
    return SecretData(MappingProxyType(values))
