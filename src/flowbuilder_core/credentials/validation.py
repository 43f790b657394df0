"""Checking credential input. Messages name fields, never echo values."""

from __future__ import annotations

from collections.abc import Mapping

from flowbuilder_core.credentials.model import CREDENTIAL_TYPES, SecretData
from flowbuilder_core.nodes.schema import check, missing_required
from flowbuilder_core.shared.errors import FieldError, InvalidInputError, Location

MAX_NAME = 200


def check_name(name: str, errors: list[FieldError]) -> str:
    clean = name.strip()
    if not 1 <= len(clean) <= MAX_NAME or "\x00" in clean:
        errors.append(FieldError("/name", f"must be 1 to {MAX_NAME} characters after trimming"))
    return clean


def check_type(
    credential_type: str,
    errors: list[FieldError],
    field: str = "/type",
    location: Location = Location.BODY,
) -> None:
    if credential_type not in CREDENTIAL_TYPES:
        message = "must be one of: " + ", ".join(CREDENTIAL_TYPES)
        errors.append(FieldError(field, message, location))


def check_data(
    credential_type: str, data: Mapping[str, object], errors: list[FieldError]
) -> SecretData:
    """The secret fields, checked against the type's schema (every field required but for
    `generic`). NUL characters are refused: no store keeps them faithfully."""
    schema = CREDENTIAL_TYPES[credential_type].schema
    problems = check(dict(data), schema, "/data") + missing_required(
        data, schema, "/data", "is required"
    )
    problems += [
        FieldError(f"/data/{key}", "must not contain the NUL character")
        for key, value in data.items()
        if isinstance(value, str) and "\x00" in value
    ]
    # The field names are stored too (as JSON, which Postgres refuses with a NUL in it).
    if any("\x00" in key for key in data):
        problems.append(FieldError("/data", "keys must not contain the NUL character"))
    errors += problems
    return SecretData({k: v for k, v in data.items() if isinstance(v, str)})


def raise_if(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidInputError(errors)
