"""One header rule: what a node parameter accepts when saved, the node sends."""

from __future__ import annotations

import pytest

from flowbuilder_adapters.nodes.http_request.request import build_request
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import Json
from flowbuilder_core.nodes.catalogue import NODE_TYPES
from flowbuilder_core.nodes.schema import check

# Every character of the first code pages inside a value and at its end (where a regex `$`
# could let a final newline through), and a few from further up.
CANDIDATES = [
    text
    for char in [*map(chr, range(0x300)), "\u2028", "\ufeff", "\U0001f600"]
    for text in (f"a{char}b", f"ab{char}")
] + [""]

URL = "https://example.com/"


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
