"""Credentials, their types, and the reference to where their secret values live."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import NewType

from flowbuilder_core.nodes.http_request import HEADER_NAME_SCHEMA, HEADER_VALUE_SCHEMA
from flowbuilder_core.nodes.schema import JsonSchema
from flowbuilder_core.shared.ids import UserId

CredentialId = NewType("CredentialId", uuid.UUID)


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a credential's values live; opaque to all but the SecretStore that issued it."""

    value: str


@dataclass(frozen=True, slots=True)
class SecretBinding:
    """Whose secret this is. Stores bind the stored value to it (AES-GCM associated data, a
    Secrets Manager tag), so a value moved to another credential or owner does not read back."""

    owner_id: UserId
    credential_id: CredentialId


@dataclass(frozen=True, slots=True)
class SecretData:
    """Secret field values. Never printed: `repr` and `str` show the field names only."""

    values: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"SecretData(fields={sorted(self.values)})"

    __str__ = __repr__

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(sorted(self.values))


@dataclass(frozen=True, slots=True)
class CredentialType:
    """A kind of credential and the JSON Schema of its secret fields."""

    type: str
    title: str
    schema: JsonSchema


# Every field of the HTTP credential types goes into a request header (a basic credential's as
# base64 of `username:password`, which the node builds only from printable ASCII), so each is
# held to the node's header rules when it is saved rather than failing when the node runs.
_HEADER_NAME = {**HEADER_NAME_SCHEMA, "minLength": 1, "maxLength": 256}
_HEADER_VALUE = {**HEADER_VALUE_SCHEMA, "minLength": 1, "maxLength": 8192}


def _fields(properties: dict[str, object]) -> JsonSchema:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


CREDENTIAL_TYPES: Mapping[str, CredentialType] = MappingProxyType(
    {
        kind.type: kind
        for kind in (
            CredentialType("http_bearer", "Bearer token", _fields({"token": _HEADER_VALUE})),
            CredentialType(
                "http_basic",
                "Basic authentication",
                _fields({"username": _HEADER_VALUE, "password": _HEADER_VALUE}),
            ),
            CredentialType(
                "http_header",
                "Custom header",
                _fields({"name": _HEADER_NAME, "value": _HEADER_VALUE}),
            ),
            CredentialType(
                "generic",
                "Generic secret",
                {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 8192},
                    "maxProperties": 50,
                    "propertyNames": {"minLength": 1, "maxLength": 128},
                },
            ),
        )
    }
)


@dataclass(kw_only=True, slots=True)
class Credential:
    """A named secret of one user. Holds where the values are, never the values."""

    id: CredentialId
    owner_id: UserId
    name: str
    type: str
    fields: tuple[str, ...]
    secret_ref: SecretRef
    created_at: datetime
    updated_at: datetime

    @property
    def binding(self) -> SecretBinding:
        return SecretBinding(self.owner_id, self.id)

    def rename(self, name: str, *, at: datetime) -> None:
        self.name = name
        self.updated_at = at

    def rotate(self, ref: SecretRef, fields: tuple[str, ...], *, at: datetime) -> None:
        self.secret_ref = ref
        self.fields = fields
        self.updated_at = at
