"""Save-time and execute-time validation of workflow definitions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flowbuilder_core.shared.errors import InvalidInputError
from flowbuilder_core.workflows.model import Definition
from flowbuilder_core.workflows.validation import (
    parse_definition,
    parse_fields,
    runnability_problems,
)

from support.factories import make_definition, make_http_node, make_node


def save_errors(definition: Any) -> dict[str, str]:
    _, errors = parse_definition(definition)
    return {e.field: e.message for e in errors}


def execute_errors(
    definition: Any, credentials: dict[uuid.UUID, str] | None = None
) -> dict[str, str]:
    parsed, errors = parse_definition(definition)
    assert errors == []
    return {e.field: e.message for e in runnability_problems(parsed, credentials or {})}


def test_a_well_formed_runnable_definition_has_no_problems() -> None:
    assert save_errors(make_definition()) == {}
    assert execute_errors(make_definition()) == {}


def test_a_missing_definition_is_the_empty_graph() -> None:
    definition, errors = parse_definition(None)

    assert errors == []
    assert definition == Definition()


def test_every_save_problem_is_listed_with_its_pointer() -> None:
    definition = {
        "nodes": [
            make_node("start", extra=1),
            make_node("bad id!", "trigger.manual"),
            make_node("x", "no.such.type"),
            make_http_node("fetch", url="ftp://example.com", timeout_s=31, method="FETCH"),
            make_node("start"),
        ],
        "edges": [
            {"source": "start", "target": "ghost"},
            {"source": "fetch", "target": "fetch"},
            {"source": "start", "target": "fetch", "label": "x"},
        ],
        "viewport": {},
    }

    assert save_errors(definition) == {
        "/definition/viewport": "is not a known field",
        "/definition/nodes/0/extra": "is not a known field",
        "/definition/nodes/1/id": "must be 1 to 64 characters of A-Z a-z 0-9 _ -",
        "/definition/nodes/2/type": "is not a known node type",
        "/definition/nodes/3/parameters/method": (
            "must be one of: GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
        ),
        "/definition/nodes/3/parameters/url": "must be an http or https URL with a host",
        "/definition/nodes/3/parameters/timeout_s": "must be at most 30",
        "/definition/nodes/4/id": "is not unique",
        "/definition/edges/0/target": "must be the id of a node",
        "/definition/edges/1/target": "an edge cannot loop to its source",
        "/definition/edges/2/label": "is not a known field",
    }


def test_node_and_edge_counts_are_bounded() -> None:
    nodes = [make_node(f"n{i}", "data.set", parameters={"value": i}) for i in range(501)]
    edges = [{"source": "a", "target": "b"}] * 2001

    assert save_errors({"nodes": nodes, "edges": edges}) == {
        "/definition/nodes": "must have at most 500 items",
        "/definition/edges": "must have at most 2000 items",
    }


def test_unknown_parameters_and_wrong_types_are_save_errors() -> None:
    definition = make_definition(
        nodes=[
            make_node(),
            make_node("wait", "util.delay", parameters={"seconds": "ten", "unit": "s"}),
            make_node("flag", "util.delay", parameters={"seconds": True}),
        ],
        edges=[],
    )

    assert save_errors(definition) == {
        "/definition/nodes/1/parameters/seconds": "must be of type number",
        "/definition/nodes/1/parameters/unit": "is not a known parameter",
        "/definition/nodes/2/parameters/seconds": "must be of type number",
    }


def test_a_parameter_that_is_one_whole_template_is_checked_when_the_node_runs() -> None:
    definition = make_definition(
        nodes=[
            make_node(),
            make_http_node(url="{{ input.url }}", timeout_s="{{ input.timeout }}"),
        ]
    )

    assert save_errors(definition) == {}


def test_keys_with_slashes_and_tildes_are_escaped_in_pointers() -> None:
    definition = make_definition(nodes=[make_node(), make_http_node(headers={"a/b~c": 1})])

    assert save_errors(definition) == {
        "/definition/nodes/1/parameters/headers/a~1b~0c": "must be of type string"
    }


def test_branch_outputs_are_only_allowed_on_edges_leaving_logic_if() -> None:
    definition = make_definition(
        edges=[{"source": "start", "target": "fetch", "source_output": "true"}]
    )

    assert save_errors(definition) == {
        "/definition/edges/0/source_output": (
            "is only allowed on edges leaving logic.if, logic.switch, "
            "or a node whose on_error is branch"
        )
    }


def test_a_definition_without_exactly_one_trigger_is_not_runnable() -> None:
    assert execute_errors({"nodes": [make_http_node()], "edges": []}) == {
        "/definition/nodes": "must have exactly one trigger node, found 0",
    }
    two = {"nodes": [make_node("a"), make_node("b")], "edges": []}
    assert execute_errors(two) == {
        "/definition/nodes": "must have exactly one trigger node, found 2"
    }


def test_cycles_and_edges_into_the_trigger_are_not_runnable() -> None:
    definition = {
        "nodes": [
            make_node(),
            make_node("a", "data.set", parameters={"value": 1}),
            make_node("b", "data.set", parameters={"value": 2}),
        ],
        "edges": [
            {"source": "start", "target": "a"},
            {"source": "a", "target": "b"},
            {"source": "b", "target": "a"},
            {"source": "b", "target": "start"},
        ],
    }

    assert execute_errors(definition) == {
        "/definition/edges/3/target": "a trigger node cannot have incoming edges",
        "/definition/nodes/0/id": "is part of a cycle; workflows must be acyclic",
        "/definition/nodes/1/id": "is part of a cycle; workflows must be acyclic",
        "/definition/nodes/2/id": "is part of a cycle; workflows must be acyclic",
    }


def test_missing_required_parameters_block_execution_but_not_saving() -> None:
    definition = {
        "nodes": [make_node(), make_node("fetch", "http.request"), make_node("if", "logic.if")],
        "edges": [{"source": "start", "target": "fetch"}, {"source": "fetch", "target": "if"}],
    }

    assert save_errors(definition) == {}
    assert execute_errors(definition) == {
        "/definition/nodes/1/parameters/method": "is required to run this node",
        "/definition/nodes/1/parameters/url": "is required to run this node",
        "/definition/nodes/2/parameters/condition": "is required to run this node",
    }


def test_edges_leaving_logic_if_must_choose_a_branch_to_run() -> None:
    definition = {
        "nodes": [
            make_node(),
            make_node("if", "logic.if", parameters={"condition": "input.ok"}),
            make_node("yes", "data.set", parameters={"value": 1}),
        ],
        "edges": [{"source": "start", "target": "if"}, {"source": "if", "target": "yes"}],
    }

    assert execute_errors(definition) == {
        "/definition/edges/1/source_output": (
            'must be "true" or "false" on an edge leaving a logic.if node'
        )
    }


def test_credentials_must_be_the_owners_and_of_an_accepted_type() -> None:
    mine, foreign, basic = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    definition = {
        "nodes": [
            make_node(credential_id=str(mine)),
            {**make_http_node("a"), "credential_id": str(foreign)},
            {**make_http_node("b"), "credential_id": str(basic)},
            {**make_http_node("c"), "credential_id": str(mine)},
        ],
        "edges": [],
    }

    problems = execute_errors(definition, {mine: "generic", basic: "http_basic"})

    assert problems == {
        "/definition/nodes/0/credential_id": "trigger.manual nodes take no credential",
        "/definition/nodes/1/credential_id": "is not a credential of yours",
        "/definition/nodes/3/credential_id": (
            "is a generic credential; http.request accepts http_bearer, http_basic, http_header"
        ),
    }


def test_a_malformed_credential_id_is_a_save_error() -> None:
    definition = make_definition(nodes=[make_node(), {**make_http_node(), "credential_id": "nope"}])

    assert save_errors(definition) == {
        "/definition/nodes/1/credential_id": "must be a UUID or null"
    }


def test_workflow_fields_are_trimmed_deduplicated_and_bounded() -> None:
    fields = parse_fields(
        name="  Orders  ", description="", tags=[" a ", "a", "b"], definition=None
    )

    assert (fields.name, fields.tags) == ("Orders", ("a", "b"))


def test_every_invalid_workflow_field_is_reported_at_once() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_fields(
            name="   ",
            description="d" * 2001,
            tags=["t"] * 19 + ["", "x" * 51],
            definition={"nodes": "many"},
        )

    assert {e.field for e in caught.value.errors} == {
        "/name",
        "/description",
        "/tags",
        "/tags/19",
        "/tags/20",
        "/definition/nodes",
    }


def test_a_string_with_two_templates_is_not_one_whole_template_and_is_checked_at_save() -> None:
    definition = make_definition(nodes=[make_node(), make_http_node(url="{{ a }} and {{ b }}")])

    assert save_errors(definition) == {
        "/definition/nodes/1/parameters/url": "must be an http or https URL with a host"
    }
