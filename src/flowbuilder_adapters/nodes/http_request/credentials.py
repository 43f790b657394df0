"""How a credential becomes request headers, and how its values are kept out of the output.

Credential values never appear in an error message, and are replaced by `***` wherever the
server echoes them into the output (headers or body).
"""

from __future__ import annotations

import base64
from typing import Final

from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import ResolvedSecret
from flowbuilder_core.nodes.http_request import is_header_name, is_header_value

_REDACTED: Final = "***"
_MIN_REDACTED_LENGTH: Final = 4


def credential_headers(credential: ResolvedSecret) -> tuple[dict[str, str], list[str]]:
    """The headers a credential adds, and the values to keep out of the output."""
    values = credential.data.values

    def field(name: str) -> str:
        value = values.get(name)
        if not isinstance(value, str) or not value:
            raise NodeFailedError(
                "invalid_credential", f"The {credential.type} credential has no `{name}`."
            )
        if not is_header_value(value):
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
        if not is_header_name(name):
            raise NodeFailedError(
                "invalid_credential", "The credential's header name is not a valid header name."
            )
        return {name: value}, [value]
    raise NodeFailedError(
        "invalid_credential",
        f"A {credential.type} credential cannot be used by an http.request node.",
    )


def with_credential_headers(
    headers: dict[str, str], credential_headers: dict[str, str]
) -> dict[str, str]:
    """`headers` with the credential's added; a credential header replaces any header of the
    same name (in any case) that the parameters set."""
    overridden = {name.lower() for name in credential_headers}
    merged = {k: v for k, v in headers.items() if k.lower() not in overridden}
    merged.update(credential_headers)
    return merged


def redact(value: Json, secrets: list[str]) -> Json:
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
