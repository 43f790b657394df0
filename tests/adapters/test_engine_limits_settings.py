"""The engine's limits come from the environment (docs/API.md §5) and reach the engine."""

from __future__ import annotations

import pytest
from dishka import make_async_container

from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.settings import Mode, SettingsError, load_settings
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider, RunsProvider, ScopesProvider
from flowbuilder_core.executions.bounds import EngineLimits
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import ExecutionStatus, StepResult
from flowbuilder_core.executions.ports import CredentialResolver
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, Edge, Node


def test_the_engine_limits_default_to_the_documented_values() -> None:
    settings = load_settings({}, Mode.EMBEDDED)

    assert settings.engine_limits == EngineLimits(
        max_node_output_bytes=1024 * 1024,
        max_run_context_bytes=8 * 1024 * 1024,
        expression_timeout_s=2.0,
    )


def test_the_engine_limits_are_read_from_the_environment() -> None:
    env = {
        "MAX_NODE_OUTPUT_BYTES": "2048",
        "MAX_RUN_CONTEXT_BYTES": "65536",
        "EXPRESSION_TIMEOUT_S": "0.5",
        "MAX_FOR_EACH_ITEMS": "20",
    }

    settings = load_settings(env, Mode.EMBEDDED)

    assert settings.engine_limits == EngineLimits(2048, 65536, 0.5, 20)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("MAX_NODE_OUTPUT_BYTES", "0", "must be a positive integer"),
        ("MAX_NODE_OUTPUT_BYTES", "1.5", "must be a positive integer"),
        ("MAX_RUN_CONTEXT_BYTES", "-8", "must be a positive integer"),
        ("EXPRESSION_TIMEOUT_S", "0", "must be a positive number"),
        ("EXPRESSION_TIMEOUT_S", "soon", "must be a positive number"),
        ("EXPRESSION_TIMEOUT_S", "nan", "must be a positive number"),
        ("EXPRESSION_TIMEOUT_S", "inf", "must be a positive number"),
        ("MAX_FOR_EACH_ITEMS", "0", "must be a positive integer"),
    ],
)
def test_an_invalid_engine_limit_is_a_settings_error_naming_it(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value}, Mode.EMBEDDED)

    assert caught.value.problems == [f"{name}: {problem}"]


async def test_the_engine_the_wiring_provides_keeps_to_the_limits_it_was_given() -> None:
    container = make_async_container(
        CoreProvider(),
        MemoryProvider(MemoryStore()),
        RunsProvider(
            allow_private_network=False, engine_limits=EngineLimits(max_node_output_bytes=100)
        ),
        ScopesProvider(),
    )
    nodes = (
        Node("start", "trigger.manual", {}),
        Node("big", "data.set", {"value": "x" * 200}),
    )
    steps: list[StepResult] = []

    async def record(step: StepResult) -> None:
        steps.append(step)

    async def never() -> bool:
        return False

    try:
        engine = await container.get(Engine)
        outcome = await engine.run(
            owner=UserId("user_alice"),
            definition=Definition(nodes, (Edge("start", "big"),)),
            input={},
            credentials=await container.get(CredentialResolver),
            on_step=record,
            should_stop=never,
        )
    finally:
        await container.close()

    assert outcome.status is ExecutionStatus.FAILED
    assert outcome.error is not None
    assert outcome.error.code == "output_too_large"
