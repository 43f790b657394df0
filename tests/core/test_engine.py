"""The engine that runs a workflow definition, with a fake http.request runner and the real
JMESPath evaluator."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_core.credentials.errors import CredentialNotFoundError
from flowbuilder_core.credentials.model import SecretData
from flowbuilder_core.executions.bounds import Budget, EngineLimits
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.errors import NodeFailedError
from flowbuilder_core.executions.model import (
    MAX_OUTPUT_BYTES,
    ExecutionStatus,
    Json,
    RunOutcome,
    StepResult,
    StepStatus,
)
from flowbuilder_core.executions.ports import (
    ExpressionEvaluator,
    NodeCall,
    NodeRunner,
    ResolvedSecret,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Edge, Node

ALICE = UserId("user_alice")
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "s3cr3t-t0ken"


class SteppingClock:
    """Each reading is one second after the last."""

    def __init__(self) -> None:
        self._now = T0

    def now(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


class FakeHttpRunner(NodeRunner):
    """Stands in for http.request: answers from `responses` by node id (an output, or an
    exception to raise) and remembers every call."""

    def __init__(self, responses: Mapping[str, Json | Exception] | None = None) -> None:
        self.responses = dict(responses or {})
        self.calls: list[NodeCall] = []

    async def run(self, call: NodeCall) -> Json:
        self.calls.append(call)
        response = self.responses.get(call.node.id, {"status": 200, "headers": {}, "body": {}})
        if isinstance(response, Exception):
            raise response
        return response


class FakeCredentials:
    def __init__(self, secrets: Mapping[uuid.UUID, ResolvedSecret] | None = None) -> None:
        self.secrets = dict(secrets or {})
        self.asked: list[tuple[UserId, uuid.UUID]] = []

    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        self.asked.append((owner, credential_id))
        if credential_id not in self.secrets:
            raise CredentialNotFoundError
        return self.secrets[credential_id]


@dataclass
class Run:
    outcome: RunOutcome
    steps: list[StepResult] = field(default_factory=list)

    def final(self, node_id: str) -> StepResult:
        return [step for step in self.steps if step.node_id == node_id][-1]

    def finals(self) -> list[StepResult]:
        return [step for step in self.steps if step.status is not StepStatus.RUNNING]

    def statuses(self) -> dict[str, StepStatus]:
        return {step.node_id: step.status for step in self.finals()}

    def output(self, node_id: str) -> Json:
        return self.final(node_id).output


def make_node(node_id: str, node_type: str = "data.set", **parameters: Any) -> Node:
    return Node(node_id, node_type, parameters)


def make_set(node_id: str, value: Any) -> Node:
    return make_node(node_id, "data.set", value=value)


def chain(*node_ids: str) -> tuple[Edge, ...]:
    return tuple(Edge(a, b) for a, b in itertools.pairwise(node_ids))


async def run(
    nodes: tuple[Node, ...],
    edges: tuple[Edge, ...],
    *,
    input: Mapping[str, Json] | None = None,
    http: FakeHttpRunner | None = None,
    credentials: FakeCredentials | None = None,
    cancel_after: int | None = None,
    runners: Mapping[str, NodeRunner] | None = None,
    limits: EngineLimits | None = None,
    expressions: ExpressionEvaluator | None = None,
) -> Run:
    """Runs the graph; `cancel_after=n` answers "cancelled" from the n+1-th question on."""

    async def no_sleep(seconds: float) -> None:
        return None

    all_runners: dict[str, NodeRunner] = {
        **basic_runners(sleep=no_sleep),
        "http.request": http or FakeHttpRunner(),
    }
    if runners is not None:
        all_runners = dict(runners)
    engine = Engine(all_runners, expressions or JmesPathEvaluator(), SteppingClock(), limits=limits)
    steps: list[StepResult] = []
    questions = 0

    async def on_step(step: StepResult) -> None:
        steps.append(step)

    async def cancelled() -> bool:
        nonlocal questions
        questions += 1
        return cancel_after is not None and questions > cancel_after

    outcome = await engine.run(
        owner=ALICE,
        definition=Definition(nodes, edges),
        input=input or {},
        credentials=credentials or FakeCredentials(),
        on_step=on_step,
        should_stop=cancelled,
    )
    return Run(outcome, steps)


START = make_node("start", "trigger.manual")


# --- order -------------------------------------------------------------------------------


async def test_nodes_run_in_topological_order_and_the_ready_node_declared_first_goes_next() -> None:
    nodes = (
        make_set("join", "{{ [nodes.b, nodes.a] }}"),
        make_set("b", "B"),
        START,
        make_set("a", "A"),
        make_set("lonely", "L"),
    )
    edges = (Edge("start", "a"), Edge("start", "b"), Edge("a", "join"), Edge("b", "join"))

    result = await run(nodes, edges)

    assert result.outcome == RunOutcome(ExecutionStatus.SUCCEEDED)
    assert [step.node_id for step in result.finals()] == ["start", "b", "a", "join", "lonely"]
    assert result.output("join") == ["B", "A"]


async def test_each_node_reports_running_before_its_final_step_with_clock_times() -> None:
    result = await run((START, make_set("a", 1)), chain("start", "a"))

    assert [(step.node_id, step.status) for step in result.steps] == [
        ("start", StepStatus.RUNNING),
        ("start", StepStatus.SUCCEEDED),
        ("a", StepStatus.RUNNING),
        ("a", StepStatus.SUCCEEDED),
    ]
    running, final = result.steps[2], result.steps[3]
    assert running.started_at == final.started_at == T0 + timedelta(seconds=3)
    assert running.finished_at is None
    assert final.finished_at == T0 + timedelta(seconds=4)


async def test_the_manual_trigger_outputs_the_execution_input() -> None:
    result = await run((START,), (), input={"order": {"id": 7}})

    assert result.output("start") == {"order": {"id": 7}}


# --- templates ---------------------------------------------------------------------------


async def test_a_whole_template_keeps_its_json_type_anywhere_in_the_parameters() -> None:
    value = {
        "number": "{{ input.n }}",
        "object": "  {{ input.obj }}  ",
        "nested": {"list": ["{{ input.flag }}", {"deep": "{{ nodes.start.n }}"}]},
        "plain": "no template here",
        "untouched": 3,
    }
    result = await run(
        (START, make_set("set", value)),
        chain("start", "set"),
        input={"n": 4.5, "obj": {"a": [1, 2]}, "flag": False},
    )

    assert result.output("set") == {
        "number": 4.5,
        "object": {"a": [1, 2]},
        "nested": {"list": [False, {"deep": 4.5}]},
        "plain": "no template here",
        "untouched": 3,
    }


async def test_templates_inside_text_are_stringified() -> None:
    text = (
        "n={{ input.n }} f={{ input.f }} s={{ input.s }} obj={{ input.obj }} "
        "list={{ input.list }} flag={{ input.flag }} none={{ input.none }}"
    )
    result = await run(
        (START, make_set("set", {"nested": [text]})),
        chain("start", "set"),
        input={
            "n": 3,
            "f": 2.5,
            "s": "hi",
            "obj": {"a": "é"},
            "list": [1, "x"],
            "flag": True,
            "none": None,
        },
    )

    assert result.output("set") == {
        "nested": ['n=3 f=2.5 s=hi obj={"a":"é"} list=[1,"x"] flag=true none=null']
    }


async def test_two_templates_in_one_string_are_text_not_one_whole_template() -> None:
    result = await run(
        (START, make_set("set", "{{ input.a }}{{ input.b }}")),
        chain("start", "set"),
        input={"a": 1, "b": 2},
    )

    assert result.output("set") == "12"


async def test_an_unknown_template_path_is_null() -> None:
    result = await run(
        (START, make_set("set", {"whole": "{{ nodes.nothing.here }}", "text": "x={{ input.no }}"})),
        chain("start", "set"),
    )

    assert result.output("set") == {"whole": None, "text": "x=null"}


async def test_later_nodes_see_earlier_outputs_and_the_input() -> None:
    http = FakeHttpRunner({"fetch": {"status": 200, "headers": {}, "body": {"id": 42}}})
    nodes = (
        START,
        make_node("fetch", "http.request", method="GET", url="https://x.test/{{ input.path }}"),
        make_node(
            "post",
            "http.request",
            method="POST",
            url="https://x.test/orders/{{ nodes.fetch.body.id }}",
            body={"id": "{{ nodes.fetch.body.id }}", "who": "{{ input.who }}"},
        ),
    )

    result = await run(
        nodes, chain("start", "fetch", "post"), input={"path": "orders", "who": "me"}, http=http
    )

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert http.calls[0].parameters == {"method": "GET", "url": "https://x.test/orders"}
    assert http.calls[1].parameters == {
        "method": "POST",
        "url": "https://x.test/orders/42",
        "body": {"id": 42, "who": "me"},
    }


async def test_a_template_that_does_not_parse_fails_the_node_with_expression_error() -> None:
    result = await run(
        (START, make_set("set", "{{ input.[ }}"), make_set("after", 1)),
        chain("start", "set", "after"),
    )

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("expression_error", "set")
    assert "/value" in error.message
    assert result.statuses()["after"] is StepStatus.SKIPPED


async def test_a_whole_template_failing_its_schema_fails_the_node_without_showing_the_value() -> (
    None
):
    nodes = (START, make_node("wait", "util.delay", seconds="{{ input.s }}"))

    result = await run(nodes, chain("start", "wait"), input={"s": 500})

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("invalid_parameters", "wait")
    assert "/seconds" in error.message
    assert "500" not in error.message
    assert result.final("wait").status is StepStatus.FAILED


async def test_a_text_template_that_breaks_a_pattern_fails_the_node() -> None:
    nodes = (START, make_node("fetch", "http.request", method="GET", url="{{ input.u }}/x"))

    result = await run(nodes, chain("start", "fetch"), input={"u": "ftp://files.test"})

    error = result.outcome.error
    assert error is not None
    assert error.code == "invalid_parameters"
    assert "/url" in error.message
    assert "files.test" not in error.message


async def test_a_missing_required_parameter_fails_the_node() -> None:
    result = await run((START, make_node("set", "data.set")), chain("start", "set"))

    assert result.outcome.error is not None
    assert result.outcome.error.code == "invalid_parameters"
    assert "/value" in result.outcome.error.message


async def test_a_valid_whole_template_parameter_runs_the_node() -> None:
    nodes = (START, make_node("wait", "util.delay", seconds="{{ input.s }}"))

    result = await run(nodes, chain("start", "wait"), input={"s": 2})

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert result.output("wait") == {}


# --- logic.if and data.transform ----------------------------------------------------------


def branching(condition: str) -> tuple[tuple[Node, ...], tuple[Edge, ...]]:
    """start -> check; check(true) -> yes -> join; check(false) -> no -> after_no -> join."""
    nodes = (
        START,
        make_node("check", "logic.if", condition=condition),
        make_set("yes", "Y"),
        make_set("no", "N"),
        make_set("after_no", "{{ nodes.no }}"),
        make_set("join", "{{ [nodes.yes, nodes.after_no] }}"),
    )
    edges = (
        Edge("start", "check"),
        Edge("check", "yes", "true"),
        Edge("check", "no", "false"),
        Edge("no", "after_no"),
        Edge("yes", "join"),
        Edge("after_no", "join"),
    )
    return nodes, edges


async def test_a_true_condition_skips_the_false_branch_and_the_join_still_runs() -> None:
    result = await run(*branching("input.amount > `100`"), input={"amount": 150})

    assert result.outcome == RunOutcome(ExecutionStatus.SUCCEEDED)
    assert result.output("check") == {"result": True}
    assert result.statuses() == {
        "start": StepStatus.SUCCEEDED,
        "check": StepStatus.SUCCEEDED,
        "yes": StepStatus.SUCCEEDED,
        "no": StepStatus.SKIPPED,
        "after_no": StepStatus.SKIPPED,
        "join": StepStatus.SUCCEEDED,
    }
    assert result.output("join") == ["Y", None]
    assert result.final("no").output is None
    assert result.final("no").started_at is None


async def test_a_false_condition_skips_the_true_branch_and_runs_the_false_one() -> None:
    result = await run(*branching("input.amount > `100`"), input={"amount": 5})

    assert result.output("check") == {"result": False}
    assert result.statuses()["yes"] is StepStatus.SKIPPED
    assert result.statuses()["no"] is StepStatus.SUCCEEDED
    assert result.statuses()["after_no"] is StepStatus.SUCCEEDED
    assert result.output("join") == [None, "N"]


async def test_a_node_reached_only_through_skipped_nodes_is_skipped() -> None:
    nodes = (
        START,
        make_node("check", "logic.if", condition="`false`"),
        make_set("yes", 1),
        make_set("after_yes", 2),
        make_set("after_after", 3),
    )
    edges = (Edge("start", "check"), Edge("check", "yes", "true"), *chain("yes", "after_yes"))
    edges += (Edge("after_yes", "after_after"),)

    result = await run(nodes, edges)

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert [result.statuses()[n] for n in ("yes", "after_yes", "after_after")] == [
        StepStatus.SKIPPED
    ] * 3


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        *[(0, True), (1, True), ("x", True), ([0], True), ({"a": None}, True), (True, True)],
        *[(False, False), (None, False), ("", False), ([], False), ({}, False)],
    ],
)
async def test_the_condition_follows_jmespath_truthiness(value: Json, truthy: bool) -> None:
    nodes = (START, make_node("check", "logic.if", condition="input.v"))

    result = await run(nodes, chain("start", "check"), input={"v": value})

    assert result.output("check") == {"result": truthy}


async def test_a_condition_written_as_a_whole_template_means_its_expression() -> None:
    nodes = (START, make_node("check", "logic.if", condition="{{ input.ok }}"))

    result = await run(nodes, chain("start", "check"), input={"ok": True})

    assert result.output("check") == {"result": True}


async def test_a_transform_outputs_its_expressions_value() -> None:
    nodes = (
        START,
        make_node("total", "data.transform", expression="sum(input.items[].qty)"),
        make_set("report", "total={{ nodes.total }}"),
    )

    result = await run(
        nodes, chain("start", "total", "report"), input={"items": [{"qty": 2}, {"qty": 3}]}
    )

    assert result.output("total") == 5
    assert result.output("report") == "total=5"


async def test_a_failing_transform_expression_fails_the_node_with_expression_error() -> None:
    nodes = (START, make_node("total", "data.transform", expression="length(input.n)"))

    result = await run(nodes, chain("start", "total"), input={"n": 918273})

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("expression_error", "total")
    assert "918273" not in error.message


# --- failures ----------------------------------------------------------------------------


async def test_a_failing_node_fails_the_run_and_every_later_node_is_skipped() -> None:
    response = {"status": 503, "headers": {}, "body": "down"}
    http = FakeHttpRunner(
        {"fetch": NodeFailedError("http_status", "The server answered 503.", output=response)}
    )
    nodes = (
        START,
        make_node("fetch", "http.request", method="GET", url="https://x.test"),
        make_set("after", 1),
        make_set("unrelated", 2),
    )

    result = await run(nodes, chain("start", "fetch", "after"), http=http)

    error = result.outcome.error
    assert result.outcome.status is ExecutionStatus.FAILED
    assert error is not None
    assert (error.code, error.message, error.node_id) == (
        "http_status",
        "The server answered 503.",
        "fetch",
    )
    failed = result.final("fetch")
    assert (failed.status, failed.output, failed.error) == (StepStatus.FAILED, response, error)
    assert failed.finished_at is not None
    assert result.statuses() == {
        "start": StepStatus.SUCCEEDED,
        "fetch": StepStatus.FAILED,
        "unrelated": StepStatus.SKIPPED,
        "after": StepStatus.SKIPPED,
    }


async def test_an_unexpected_exception_is_an_internal_error_with_a_generic_message() -> None:
    http = FakeHttpRunner({"fetch": RuntimeError(f"boom with {TOKEN}")})
    nodes = (START, make_node("fetch", "http.request", method="GET", url="https://x.test"))

    result = await run(nodes, chain("start", "fetch"), http=http)

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("internal_error", "fetch")
    assert TOKEN not in error.message


async def test_a_node_type_without_a_runner_fails_with_unknown_node_type() -> None:
    nodes = (START, make_node("fetch", "http.request", method="GET", url="https://x.test"))

    result = await run(nodes, chain("start", "fetch"), runners={})

    assert result.outcome.error is not None
    assert result.outcome.error.code == "unknown_node_type"


async def test_a_cyclic_definition_fails_before_any_node_runs() -> None:
    nodes = (START, make_set("a", 1), make_set("b", 2))

    result = await run(nodes, (Edge("start", "a"), Edge("a", "b"), Edge("b", "a")))

    assert result.outcome.status is ExecutionStatus.FAILED
    assert result.outcome.error is not None
    assert result.outcome.error.code == "invalid_definition"
    assert set(result.statuses().values()) == {StepStatus.SKIPPED}


def test_the_engine_refuses_a_runner_for_a_built_in_node_type() -> None:
    with pytest.raises(ValueError, match=r"logic\.if"):
        Engine({"logic.if": FakeHttpRunner()}, JmesPathEvaluator(), SteppingClock())


# --- truncation --------------------------------------------------------------------------


async def test_an_output_over_the_limit_is_stored_truncated_but_later_nodes_see_all_of_it() -> None:
    big = 'x"' * MAX_OUTPUT_BYTES
    nodes = (
        START,
        make_set("big", {"text": "{{ input.big }}"}),
        make_node("size", "data.transform", expression="length(nodes.big.text)"),
    )

    result = await run(nodes, chain("start", "big", "size"), input={"big": big})

    stored = result.final("big")
    assert stored.truncated is True
    assert set(stored.output) == {"truncated_json"}
    full_json = json.dumps({"text": big}, separators=(",", ":"), ensure_ascii=False)
    assert full_json.startswith(stored.output["truncated_json"])
    stored_json = json.dumps(stored.output, separators=(",", ":"), ensure_ascii=False)
    assert MAX_OUTPUT_BYTES - 10 <= len(stored_json.encode()) <= MAX_OUTPUT_BYTES
    assert result.output("size") == 2 * MAX_OUTPUT_BYTES
    assert result.final("size").truncated is False


async def test_truncation_never_splits_a_multibyte_character() -> None:
    nodes = (START, make_set("big", "{{ input.big }}"))

    result = await run(nodes, chain("start", "big"), input={"big": "é" * MAX_OUTPUT_BYTES})

    stored = result.final("big").output["truncated_json"]
    assert stored.startswith('"é')
    assert set(stored[1:]) == {"é"}


async def test_a_large_output_with_a_lone_surrogate_is_still_measured_and_truncated() -> None:
    nodes = (START, make_set("big", "{{ input.big }}"))

    result = await run(nodes, chain("start", "big"), input={"big": "\ud800" * MAX_OUTPUT_BYTES})

    assert result.final("big").truncated is True


async def test_an_output_at_the_limit_is_stored_whole() -> None:
    text = "x" * (MAX_OUTPUT_BYTES - 2)  # plus its two quotes: exactly the limit
    nodes = (START, make_set("big", "{{ input.t }}"))

    result = await run(nodes, chain("start", "big"), input={"t": text})

    assert result.final("big").truncated is False
    assert result.output("big") == text


# --- bounds: output and context sizes, expression time ----------------------------------

SMALL = EngineLimits(max_node_output_bytes=10_000, max_run_context_bytes=100_000)
DOUBLING = "input" + " | {a: @, b: @}" * 16
"""Its value is a few hundred bytes of memory; its JSON is over 2**16 times `{}`, 800 kB."""
BOMB = "length([" + ", ".join(["input.xs"] * 200) + "][*][?@ < `0`][])"
"""Builds nothing, compares 200 times every number of `input.xs`: seconds for 10,000."""
MANY = {"xs": list(range(10_000))}


async def test_a_transform_whose_json_doubles_at_every_stage_fails_with_output_too_large() -> None:
    nodes = (START, make_node("blow", "data.transform", expression=DOUBLING), make_set("b", 1))

    result = await run(nodes, chain("start", "blow", "b"), limits=SMALL)

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("output_too_large", "blow")
    assert error.message == "The node's output is over 10000 bytes of JSON."
    assert result.final("blow").output is None
    assert result.statuses()["b"] is StepStatus.SKIPPED


async def test_a_chain_of_data_set_nodes_doubling_their_predecessor_stops_at_the_node_limit() -> (
    None
):
    doublers = [make_set("d0", ["{{ input }}", "{{ input }}"])] + [
        make_set(f"d{i}", [f"{{{{ nodes.d{i - 1} }}}}", f"{{{{ nodes.d{i - 1} }}}}"])
        for i in range(1, 20)
    ]
    nodes = (START, *doublers)

    result = await run(
        nodes, chain("start", *(n.id for n in doublers)), input={"k": "v"}, limits=SMALL
    )

    error = result.outcome.error
    assert error is not None
    assert error.code == "output_too_large"
    # {"k":"v"} is 9 bytes; each node doubles it and adds 3: d8 is 6,141 bytes, d9 12,285.
    assert error.node_id == "d9"
    assert result.statuses()["d8"] is StepStatus.SUCCEEDED


async def test_templates_repeating_a_value_cannot_build_parameters_over_the_node_limit() -> None:
    http = FakeHttpRunner()
    fetch = make_node(
        "fetch",
        "http.request",
        method="POST",
        url="https://x.test",
        body=["{{ input.text }}"] * 20,
    )

    result = await run(
        (START, fetch), chain("start", "fetch"), input={"text": "x" * 600}, http=http, limits=SMALL
    )

    error = result.outcome.error
    assert error is not None
    assert error.code == "output_too_large"
    assert error.message == "The values of the node's expressions are over 10000 bytes of JSON."
    assert http.calls == []


async def test_a_node_whose_output_would_take_the_run_context_over_its_limit_fails() -> None:
    limits = EngineLimits(max_node_output_bytes=1_000, max_run_context_bytes=2_500)
    nodes = (START, *(make_set(name, "x" * 700) for name in ("a", "b", "c", "d")))

    result = await run(nodes, chain("start", "a", "b", "c", "d"), limits=limits)

    error = result.outcome.error
    assert error is not None
    # The input {} and start's output {} are 4 bytes; each node adds 702.
    assert (error.code, error.node_id) == ("output_too_large", "d")
    assert error.message == "The run's outputs would be over 2500 bytes of JSON."
    assert result.statuses()["c"] is StepStatus.SUCCEEDED


async def test_an_execution_input_over_the_run_context_limit_fails_the_run_before_any_node() -> (
    None
):
    limits = EngineLimits(max_node_output_bytes=100, max_run_context_bytes=100)
    nodes = (START, make_set("a", 1))

    result = await run(nodes, chain("start", "a"), input={"big": "x" * 200}, limits=limits)

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("output_too_large", None)
    assert result.statuses() == {"start": StepStatus.SKIPPED, "a": StepStatus.SKIPPED}


async def test_an_input_over_the_node_limit_but_within_the_context_limit_fails_the_trigger() -> (
    None
):
    limits = EngineLimits(max_node_output_bytes=100, max_run_context_bytes=1_000)
    nodes = (START, make_set("a", 1))

    result = await run(nodes, chain("start", "a"), input={"big": "x" * 200}, limits=limits)

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("output_too_large", "start")
    assert error.message == "The node's output is over 100 bytes of JSON."


async def test_a_condition_is_not_limited_by_the_size_of_the_value_it_tests() -> None:
    nodes = (START, make_node("check", "logic.if", condition=DOUBLING))

    result = await run(nodes, chain("start", "check"), limits=SMALL)

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert result.output("check") == {"result": True}


async def test_an_expression_running_past_its_deadline_fails_with_expression_timeout() -> None:
    limits = EngineLimits(expression_timeout_s=0.05)
    nodes = (START, make_node("bomb", "data.transform", expression=BOMB))

    result = await run(nodes, chain("start", "bomb"), input=MANY, limits=limits)

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("expression_timeout", "bomb")
    assert error.message == "The node's expressions did not finish within 0.05 s."


async def test_the_event_loop_keeps_running_while_an_expression_is_evaluated() -> None:
    limits = EngineLimits(expression_timeout_s=0.5)
    nodes = (START, make_node("bomb", "data.transform", expression=BOMB))
    ticks = [time.monotonic()]

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.005)
            ticks.append(time.monotonic())

    ticking = asyncio.create_task(ticker())
    result = await run(nodes, chain("start", "bomb"), input=MANY, limits=limits)
    ticking.cancel()
    ticks.append(time.monotonic())

    assert result.outcome.error is not None
    assert result.outcome.error.code == "expression_timeout"
    # The bound is about 50 ms at a time; the margin is for a busy test machine.
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.25


async def test_a_large_output_is_measured_and_serialized_beside_the_event_loop() -> None:
    limits = EngineLimits(max_node_output_bytes=8 * 1024 * 1024)
    http = FakeHttpRunner({"fetch": {"status": 200, "headers": {}, "body": [7] * 2_000_000}})
    fetch = make_node("fetch", "http.request", method="GET", url="https://x.test")
    ticks = [time.monotonic()]

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.005)
            ticks.append(time.monotonic())

    ticking = asyncio.create_task(ticker())
    result = await run((START, fetch), chain("start", "fetch"), http=http, limits=limits)
    ticking.cancel()
    ticks.append(time.monotonic())

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert result.final("fetch").truncated is True
    # Two million items take seconds to walk, serialize and copy, all in a thread (the C
    # encoder alone would hold the GIL, and so the loop, for a quarter of a second or more).
    # The margin over the 50 ms is for a busy test machine.
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.25


@pytest.mark.parametrize("padding", [10, 20_000], ids=["small", "large"])
async def test_later_nodes_see_an_output_as_json_gives_it_back_however_large(padding: int) -> None:
    body = {1: "one", "pair": ("a", "b"), None: False, "pad": "p" * padding}
    http = FakeHttpRunner({"fetch": {"status": 200, "headers": {}, "body": body}})
    nodes = (
        START,
        make_node("fetch", "http.request", method="GET", url="https://x.test"),
        make_node(
            "look",
            "data.transform",
            expression="[keys(nodes.fetch.body), type(nodes.fetch.body.pair)]",
        ),
    )

    result = await run(nodes, chain("start", "fetch", "look"), http=http)

    assert result.output("look") == [["1", "pair", "null", "pad"], "array"]


class IgnoringEvaluator:
    """An evaluator that never checks its budget: it sleeps, then answers 1."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.budgets: list[Budget] = []

    def evaluate(self, expression: str, data: Json, budget: Budget) -> Json:
        self.budgets.append(budget)
        time.sleep(self.seconds)
        return 1


async def test_an_evaluator_that_ignores_its_budget_is_abandoned_and_told_to_stop() -> None:
    evaluator = IgnoringEvaluator(seconds=1.0)
    limits = EngineLimits(expression_timeout_s=0.05)
    nodes = (START, make_node("slow", "data.transform", expression="a"))

    result = await run(nodes, chain("start", "slow"), limits=limits, expressions=evaluator)

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("expression_timeout", "slow")
    with pytest.raises(NodeFailedError):
        evaluator.budgets[0].tick()


class CheckingEvaluator:
    """An evaluator that works until its budget says stop, and notes when it stopped."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.stopped = threading.Event()

    def evaluate(self, expression: str, data: Json, budget: Budget) -> Json:
        self.started.set()
        try:
            while True:
                budget.tick()
                time.sleep(0.001)
        finally:
            self.stopped.set()


async def test_cancelling_a_run_stops_the_thread_evaluating_its_expression() -> None:
    evaluator = CheckingEvaluator()
    limits = EngineLimits(expression_timeout_s=60)
    nodes = (START, make_node("busy", "data.transform", expression="a"))

    running = asyncio.create_task(
        run(nodes, chain("start", "busy"), limits=limits, expressions=evaluator)
    )
    assert await asyncio.to_thread(evaluator.started.wait, 5)
    running.cancel()  # a run deadline, or a worker stopping
    with pytest.raises(asyncio.CancelledError):
        await running

    # Long before the expression's own 60 s deadline.
    assert await asyncio.to_thread(evaluator.stopped.wait, 5)


async def test_a_failed_nodes_output_too_large_to_keep_is_dropped_but_its_error_stays() -> None:
    failure = NodeFailedError("http_status", "The server answered 500.", output="x" * 20_000)
    http = FakeHttpRunner({"fetch": failure})
    fetch = make_node("fetch", "http.request", method="GET", url="https://x.test")

    result = await run((START, fetch), chain("start", "fetch"), http=http, limits=SMALL)

    step = result.final("fetch")
    assert step.error is not None
    assert step.error.code == "http_status"
    assert step.output is None


async def test_a_failed_nodes_output_that_cannot_be_serialized_is_dropped_but_its_error_stays() -> (
    None
):
    deep: Any = "bottom"
    for _ in range(5_000):
        deep = [deep]
    failures = {
        "nan": NodeFailedError("http_status", "Not JSON.", output=float("nan")),
        "deep": NodeFailedError("http_status", "Too deep.", output=deep),
    }
    http = FakeHttpRunner(failures)
    nodes = tuple(
        make_node(name, "http.request", method="GET", url="https://x.test") for name in failures
    )

    for node in nodes:
        result = await run((START, node), chain("start", node.id), http=http)

        step = result.final(node.id)
        assert step.error is not None
        assert step.error.code == "http_status"
        assert step.output is None


# --- bad bytes ---------------------------------------------------------------------------


async def test_a_nul_in_an_output_is_recorded_as_a_replacement_character_not_for_later_nodes() -> (
    None
):
    # JMESPath literals are JSON: `"\u0000"` in the expression is a NUL in the value; the
    # text "\\u0000" (an escaped backslash, then u0000) is no NUL and must stay as it is.
    expression = '`{"a\\u0000": ["b\\u0000", "c\\\\u0000"]}`'
    nodes = (
        START,
        make_node("nul", "data.transform", expression=expression),
        make_node("sees", "data.transform", expression="keys(nodes.nul)[0]"),
    )

    result = await run(nodes, chain("start", "nul", "sees"))

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert result.output("nul") == {"a\ufffd": ["b\ufffd", "c\\u0000"]}
    assert result.output("sees") == "a\ufffd"
    assert result.final("sees").truncated is False


async def test_a_nul_in_a_failed_nodes_message_is_recorded_as_a_replacement_character() -> None:
    http = FakeHttpRunner({"fetch": NodeFailedError("http_status", "bad\x00byte")})
    fetch = make_node("fetch", "http.request", method="GET", url="https://x.test")

    result = await run((START, fetch), chain("start", "fetch"), http=http)

    error = result.outcome.error
    assert error is not None
    assert error.message == "bad\ufffdbyte"


# --- cancellation ------------------------------------------------------------------------


async def test_cancellation_between_nodes_skips_the_rest() -> None:
    nodes = (START, make_set("a", 1), make_set("b", 2))

    # Two questions a node: before it starts, and once its start is reported.
    result = await run(nodes, chain("start", "a", "b"), cancel_after=4)

    assert result.outcome == RunOutcome(ExecutionStatus.CANCELLED)
    assert result.statuses() == {
        "start": StepStatus.SUCCEEDED,
        "a": StepStatus.SUCCEEDED,
        "b": StepStatus.SKIPPED,
    }
    assert [step.node_id for step in result.steps if step.status is StepStatus.RUNNING] == [
        "start",
        "a",
    ]


async def test_a_run_cancelled_before_it_starts_runs_nothing() -> None:
    result = await run((START, make_set("a", 1)), chain("start", "a"), cancel_after=0)

    assert result.outcome.status is ExecutionStatus.CANCELLED
    assert {step.status for step in result.steps} == {StepStatus.SKIPPED}


# --- credentials -------------------------------------------------------------------------


async def test_a_nodes_credential_is_resolved_for_its_owner_into_the_call() -> None:
    credential_id = uuid.uuid4()
    secret = ResolvedSecret("http_bearer", SecretData({"token": TOKEN}))
    credentials = FakeCredentials({credential_id: secret})
    http = FakeHttpRunner()
    fetch = Node(
        "fetch",
        "http.request",
        {"method": "GET", "url": "https://x.test"},
        credential_id=credential_id,
    )

    result = await run((START, fetch), chain("start", "fetch"), http=http, credentials=credentials)

    assert result.outcome.status is ExecutionStatus.SUCCEEDED
    assert credentials.asked == [(ALICE, credential_id)]
    assert http.calls[0].credential == secret
    assert TOKEN not in repr(result.steps)


async def test_a_credential_that_cannot_be_resolved_fails_the_node() -> None:
    http = FakeHttpRunner()
    fetch = Node(
        "fetch",
        "http.request",
        {"method": "GET", "url": "https://x.test"},
        credential_id=uuid.uuid4(),
    )

    result = await run((START, fetch, make_set("after", 1)), chain("start", "fetch", "after"))

    error = result.outcome.error
    assert error is not None
    assert (error.code, error.node_id) == ("credential_unavailable", "fetch")
    assert http.calls == []
    assert result.statuses()["after"] is StepStatus.SKIPPED
