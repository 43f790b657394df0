"""The composition root: dishka providers, chosen from Settings."""

from __future__ import annotations

from dishka import Provider, Scope, provide, provide_all

from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    GetWorkflow,
    GetWorkflowVersion,
    ListWorkflows,
    ListWorkflowVersions,
    ReplaceWorkflow,
    ValidateDefinition,
)


class CoreProvider(Provider):
    """The clock (APP) and every use case (REQUEST), whatever adapters stand behind them."""

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__()
        self._clock = clock if clock is not None else SystemClock()

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return self._clock

    use_cases = provide_all(
        CreateWorkflow,
        GetWorkflow,
        ListWorkflows,
        ReplaceWorkflow,
        DeleteWorkflow,
        ValidateDefinition,
        ListWorkflowVersions,
        GetWorkflowVersion,
        scope=Scope.REQUEST,
    )
