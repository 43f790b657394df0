"""`logic.switch`, `flow.merge` and `flow.output` in the engine: which branches run, what a
join sees, and what the run's result is."""

from __future__ import annotations

from typing import Any

from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import ExecutionStatus, StepStatus
from flowbuilder_core.workflows.model import Edge, Node, OnError

from support.engine_runs import START, FlakyRunner, chain, node, run


def switch(mode: str = "first", **conditions: str) -> Node:
    cases = [{"name": name, "condition": condition} for name, condition in conditions.items()]
    return node("route", "logic.switch", cases=cases, mode=mode)


def branches(*names: str) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """A node per name, each on the switch's edge of that name."""
    nodes = tuple(node(name, value=name) for name in names)
    edges = tuple(Edge("route", name, name) for name in names)
    return nodes, edges


async def routed(route: Node, input: dict[str, Any]) -> dict[str, StepStatus]:
    targets, edges = branches("big", "small", "default")
    result = await run((START, route, *targets), (*chain("start", "route"), *edges), input=input)
    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    statuses = result.statuses()
    assert result.final("route").output is not None
    return {name: statuses[name] for name in ("big", "small", "default")}


async def test_a_switch_follows_the_first_matching_case_only() -> None:
    route = switch(big="input.n > `10`", small="input.n > `0`")

    statuses = await routed(route, {"n": 50})

    assert statuses == {
        "big": StepStatus.SUCCEEDED,
        "small": StepStatus.SKIPPED,
        "default": StepStatus.SKIPPED,
    }


async def test_a_switch_in_mode_all_follows_every_matching_case() -> None:
    route = switch("all", big="input.n > `10`", small="input.n > `0`")

    result = await run((START, route), chain("start", "route"), input={"n": 50})
    statuses = await routed(route, {"n": 50})

    assert result.final("route").output == {"matched": ["big", "small"]}
    assert statuses["big"] is statuses["small"] is StepStatus.SUCCEEDED
    assert statuses["default"] is StepStatus.SKIPPED


async def test_a_switch_with_no_match_follows_default() -> None:
    route = switch(big="input.n > `10`", small="input.n > `0`")

    statuses = await routed(route, {"n": -1})

    assert statuses == {
        "big": StepStatus.SKIPPED,
        "small": StepStatus.SKIPPED,
        "default": StepStatus.SUCCEEDED,
    }


async def test_a_switch_condition_that_cannot_be_evaluated_fails_the_node() -> None:
    result = await run((START, switch(bad="input.(")), chain("start", "route"))

    assert result.outcome.error is not None
    assert (result.outcome.error.code, result.outcome.error.node_id) == (
        "expression_error",
        "route",
    )


def diamond(mode: str) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """start -> route (switch) -> a | b | c -> join (merge)."""
    route = switch("all", a="input.a", b="input.b", c="input.c")
    nodes = (
        START,
        route,
        node("a", value=["a1", "a2"]),
        node("b", value="b"),
        node("c", value=["c"]),
        node("join", "flow.merge", mode=mode),
    )
    edges = (
        *chain("start", "route"),
        *(Edge("route", name, name) for name in "abc"),
        *(Edge(name, "join") for name in "abc"),
    )
    return nodes, edges


async def test_a_merge_joins_the_live_branches_only_as_an_object() -> None:
    nodes, edges = diamond("object")

    result = await run(nodes, edges, input={"a": True, "c": True})

    assert result.statuses()["b"] is StepStatus.SKIPPED
    assert result.final("join").output == {"a": ["a1", "a2"], "c": ["c"]}


async def test_a_merge_in_append_mode_concatenates_in_edge_order() -> None:
    nodes, edges = diamond("append")

    result = await run(nodes, edges, input={"a": True, "b": True, "c": True})

    assert result.final("join").output == ["a1", "a2", "b", "c"]


async def test_a_merge_whose_every_branch_was_skipped_is_skipped() -> None:
    nodes, edges = diamond("object")

    result = await run(nodes, edges, input={})

    assert result.statuses()["join"] is StepStatus.SKIPPED


async def test_a_merge_sees_a_branch_that_failed_under_continue_as_its_error() -> None:
    failing = NodeFailedError("timeout", "Too slow.")
    nodes = (
        START,
        node("x", "http.request", method="GET", url="https://e.com", on_error=OnError.CONTINUE),
        node("y", value=1),
        node("join", "flow.merge"),
    )
    edges = (*chain("start", "x", "join"), *chain("start", "y", "join"))

    result = await run(nodes, edges, runners={"http.request": FlakyRunner({"x": 1}, failing)})

    assert result.final("join").output == {
        "x": {"error": {"code": "timeout", "message": "Too slow."}},
        "y": 1,
    }


async def test_the_result_of_a_run_is_its_output_node_s_value_else_its_last_node_s() -> None:
    with_output = await run(
        (START, node("out", "flow.output", value="{{ input.n }}"), node("later", value=9)),
        chain("start", "out", "later"),
        input={"n": 4},
    )
    without = await run((START, node("only", value=7)), chain("start", "only"))

    assert with_output.outcome.result == 4
    assert without.outcome.result == 7
