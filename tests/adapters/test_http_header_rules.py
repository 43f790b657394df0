"""One header rule: what a credential or a node parameter accepts when saved, the node sends."""

from __future__ import annotations

import pytest

from flowbuilder_adapters.nodes.http_request.credentials import credential_headers
from flowbuilder_adapters.nodes.http_request.request import build_request
from flowbuilder_core.credentials.model import SecretData
from flowbuilder_core.credentials.validation import check_data
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.executions.ports import ResolvedSecret
from flowbuilder_core.nodes.catalogue import NODE_TYPES
from flowbuilder_core.nodes.schema import check
from flowbuilder_core.shared.errors import FieldError

# Every character of the first code pages inside a value and at its end (where a regex `$`
# could let a final newline through), and a few from further up.
CANDIDATES = [
    text
    for char in [*map(chr, range(0x300)), "\u2028", "\ufeff", "\U0001f600"]
    for text in (f"a{char}b", f"ab{char}")
] + [""]

URL = "https://example.com/"
HEADER_CREDENTIAL_FIELDS = [
    pytest.param("http_header", "value", id="a header credential's value"),
    pytest.param("http_header", "name", id="a header credential's name"),
    pytest.param("http_bearer", "token", id="a bearer token"),
    pytest.param("http_basic", "username", id="a basic credential's username"),
    pytest.param("http_basic", "password", id="a basic credential's password"),
]
VALID_FIELDS = {
    "http_header": {"name": "X-Api-Key", "value": "key"},
    "http_bearer": {"token": "token"},
    "http_basic": {"username": "alice", "password": "secret"},
}


def saves(credential_type: str, data: dict[str, str]) -> bool:
    errors: list[FieldError] = []
    check_data(credential_type, data, errors)
    return not errors


def refusal(credential_type: str, data: dict[str, str]) -> str | None:
    """The node's error code for this credential, or None when it sends it."""
    try:
        credential_headers(ResolvedSecret(credential_type, SecretData(data)))
    except NodeFailedError as error:
        return error.code
    return None


@pytest.mark.parametrize(("credential_type", "field"), HEADER_CREDENTIAL_FIELDS)
def test_a_credential_value_saves_exactly_when_the_node_accepts_it(
    credential_type: str, field: str
) -> None:
    disagreements = []
    for value in CANDIDATES:
        data = {**VALID_FIELDS[credential_type], field: value}
        expected = None if saves(credential_type, data) else "invalid_credential"
        if refusal(credential_type, data) != expected:
            disagreements.append(value)

    assert disagreements == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("caf\u00e9", id="a non-ASCII letter"),
        pytest.param("bell\x07", id="a control character"),
        pytest.param("delete\x7f", id="DEL"),
        pytest.param("line\n", id="a final newline"),
    ],
)
def test_a_header_credential_value_the_node_cannot_send_is_refused_when_saved(value: str) -> None:
    errors: list[FieldError] = []

    check_data("http_header", {"name": "X-Api-Key", "value": value}, errors)

    assert errors == [FieldError("/data/value", "must be printable ASCII on one line")]


def test_a_header_credential_value_of_printable_ascii_and_tabs_saves_and_is_sent() -> None:
    value = "\t".join(map(chr, range(0x20, 0x7F)))
    data = {"name": "X-Api-Key", "value": value}

    assert saves("http_header", data)
    assert credential_headers(ResolvedSecret("http_header", SecretData(data)))[0] == {
        "X-Api-Key": value
    }


@pytest.mark.parametrize("part", ["name", "value"])
def test_a_header_parameter_validates_exactly_when_the_node_accepts_it(part: str) -> None:
    schema = NODE_TYPES["http.request"].parameters_schema

    def validates(parameters: dict[str, Json]) -> bool:
        return not check(parameters, schema, "")

    def refusal(parameters: dict[str, Json]) -> str | None:
        try:
            build_request(parameters)
        except NodeFailedError as error:
            return error.code
        return None

    disagreements = []
    for text in CANDIDATES:
        headers: Json = {text: "v"} if part == "name" else {"X-Trace": text}
        parameters: dict[str, Json] = {"method": "GET", "url": URL, "headers": headers}
        expected = None if validates(parameters) else "invalid_parameters"
        if refusal(parameters) != expected:
            disagreements.append(text)

    assert disagreements == []
