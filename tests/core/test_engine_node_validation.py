"""Save-time validation of error policies and of the switch, merge and output nodes."""

from __future__ import annotations

from typing import Any

from flowbuilder_core.workflows.model import OnError, RetryPolicy
from flowbuilder_core.workflows.validation import parse_definition, runnability_problems

from support.factories import make_definition, make_http_node, make_node


def save_errors(definition: Any) -> dict[str, str]:
    _, errors = parse_definition(definition)
    return {e.field: e.message for e in errors}


def execute_errors(definition: Any) -> dict[str, str]:
    parsed, errors = parse_definition(definition)
    assert errors == []
    return {e.field: e.message for e in runnability_problems(parsed, {})}


def with_policy(**policy: Any) -> dict[str, Any]:
    return make_definition(nodes=[make_node(), {**make_http_node(), **policy}])


def test_a_node_keeps_its_retry_policy_and_on_error() -> None:
    definition, errors = parse_definition(
        with_policy(retry={"max_attempts": 4, "backoff_s": 0.5}, on_error="continue")
    )

    assert errors == []
    fetch = definition.nodes[1]
    assert fetch.retry == RetryPolicy(max_attempts=4, backoff_s=0.5, max_backoff_s=30.0)
    assert fetch.on_error is OnError.CONTINUE
    assert fetch.to_json()["retry"] == {"max_attempts": 4, "backoff_s": 0.5, "max_backoff_s": 30.0}


def test_every_retry_bound_is_checked_with_its_pointer() -> None:
    errors = save_errors(
        with_policy(retry={"max_attempts": 11, "backoff_s": 0.05, "max_backoff_s": 301, "x": 1})
    )

    assert errors == {
        "/definition/nodes/1/retry/max_attempts": "must be an integer from 1 to 10",
        "/definition/nodes/1/retry/backoff_s": "must be from 0.1 to 60",
        "/definition/nodes/1/retry/max_backoff_s": "must be from 0.1 to 300",
        "/definition/nodes/1/retry/x": "is not a known field",
    }
    assert save_errors(with_policy(retry={"backoff_s": 10, "max_backoff_s": 5})) == {
        "/definition/nodes/1/retry/max_backoff_s": "must be at least backoff_s"
    }
    assert save_errors(with_policy(retry={"max_attempts": True})) == {
        "/definition/nodes/1/retry/max_attempts": "must be an integer from 1 to 10"
    }


def test_on_error_is_one_of_three_and_triggers_take_no_policy() -> None:
    assert save_errors(with_policy(on_error="ignore")) == {
        "/definition/nodes/1/on_error": "must be one of: fail, continue, branch"
    }
    trigger = make_node(retry={"max_attempts": 2}, on_error="continue")
    assert save_errors(make_definition(nodes=[trigger, make_http_node()])) == {
        "/definition/nodes/0/retry": "a trigger node takes no error policy",
        "/definition/nodes/0/on_error": "a trigger node takes no error policy",
    }


def test_error_edges_leave_only_nodes_that_branch_on_error() -> None:
    error_edge = [
        {"source": "start", "target": "fetch"},
        {"source": "fetch", "target": "x", "source_output": "error"},
    ]
    nodes = [make_node(), make_http_node(), make_node("x", "data.set", parameters={"value": 1})]

    assert save_errors({"nodes": nodes, "edges": error_edge}) == {
        "/definition/edges/1/source_output": (
            "is only allowed on edges leaving logic.if, logic.switch, "
            "or a node whose on_error is branch"
        )
    }
    nodes[1] = {**nodes[1], "on_error": "branch"}
    assert save_errors({"nodes": nodes, "edges": error_edge}) == {}
    wrong = [error_edge[0], {**error_edge[1], "source_output": "oops"}]
    assert save_errors({"nodes": nodes, "edges": wrong}) == {
        "/definition/edges/1/source_output": "must be one of: error"
    }


def test_a_logic_if_cannot_branch_on_error() -> None:
    condition = make_node("if", "logic.if", parameters={"condition": "input.ok"}, on_error="branch")

    assert save_errors(make_definition(nodes=[make_node(), condition], edges=[])) == {
        "/definition/nodes/1/on_error": (
            "cannot be branch on logic.if: its edges choose by its result"
        )
    }


def switch(*names: str, **parameters: Any) -> dict[str, Any]:
    cases = [{"name": name, "condition": f"input.{name}"} for name in names]
    return make_node("route", "logic.switch", parameters={"cases": cases, **parameters})


def test_switch_cases_are_one_to_fifty_with_unique_names_other_than_default() -> None:
    def errors_of(node: dict[str, Any]) -> dict[str, str]:
        return save_errors(make_definition(nodes=[make_node(), node], edges=[]))

    assert errors_of(switch("a", "b", mode="all")) == {}
    assert errors_of(switch()) == {
        "/definition/nodes/1/parameters/cases": "must have at least 1 items"
    }
    assert errors_of(switch(*(f"c{i}" for i in range(51)))) == {
        "/definition/nodes/1/parameters/cases": "must have at most 50 items"
    }
    assert errors_of(switch("a", "a", "default", "b c")) == {
        "/definition/nodes/1/parameters/cases/1/name": "is not unique",
        "/definition/nodes/1/parameters/cases/2/name": '"default" names the edges of no match',
        "/definition/nodes/1/parameters/cases/3/name": (
            "must be 1 to 64 characters of A-Z a-z 0-9 _ -"
        ),
    }
    assert errors_of(switch("a", mode="some")) == {
        "/definition/nodes/1/parameters/mode": "must be one of: first, all"
    }


def test_switch_edges_name_a_case_or_default_and_must_name_one_to_run() -> None:
    nodes = [
        make_node(),
        switch("big", "small"),
        make_node("x", "data.set", parameters={"value": 1}),
    ]
    edges = [{"source": "start", "target": "route"}, {"source": "route", "target": "x"}]

    assert save_errors(
        {"nodes": nodes, "edges": [edges[0], {**edges[1], "source_output": "huge"}]}
    ) == {"/definition/edges/1/source_output": "must be one of: big, default, small"}
    assert execute_errors({"nodes": nodes, "edges": edges}) == {
        "/definition/edges/1/source_output": (
            'must be a case name or "default" on an edge leaving a logic.switch node'
        )
    }
    named = [edges[0], {**edges[1], "source_output": "default"}]
    assert execute_errors({"nodes": nodes, "edges": named}) == {}


def test_merge_takes_a_mode_and_output_needs_a_value_to_run() -> None:
    merge = make_node("join", "flow.merge", parameters={"mode": "zip"})
    output = make_node("out", "flow.output", parameters={})

    assert save_errors(make_definition(nodes=[make_node(), merge, output], edges=[])) == {
        "/definition/nodes/1/parameters/mode": "must be one of: object, append"
    }
    fine = [make_node(), make_node("join", "flow.merge"), output]
    assert execute_errors(make_definition(nodes=fine, edges=[])) == {
        "/definition/nodes/2/parameters/value": "is required to run this node"
    }
