"""The core's providers: the clock, every use case, and what runs executions."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dishka import Provider, Scope, provide, provide_all

from flowbuilder_adapters.cron import CronsimCalendar
from flowbuilder_adapters.metrics import PrometheusRunObserver
from flowbuilder_adapters.nodes.basic import basic_runners
from flowbuilder_adapters.nodes.expressions import JmesPathEvaluator
from flowbuilder_adapters.nodes.http_request import HttpRequestRunner
from flowbuilder_core.credentials.ports import CredentialRepository, SecretStore
from flowbuilder_core.credentials.use_cases import (
    CreateCredential,
    DeleteCredential,
    GetCredential,
    ListCredentials,
    ReplaceCredential,
    ResolveCredential,
    SweepSecrets,
)
from flowbuilder_core.executions.bounds import EngineLimits
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.events import FollowExecution
from flowbuilder_core.executions.model import RunLimits
from flowbuilder_core.executions.ports import CredentialResolver, RunTransactions
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.executions.use_cases import (
    CancelExecution,
    ExecuteWorkflow,
    FailUndeliveredExecutions,
    FinishLostExecutions,
    GetExecution,
    ListExecutions,
    ListWorkflowExecutions,
    ResumeParkedExecutions,
    RetryExecution,
)
from flowbuilder_core.nodes.schedule import DEFAULT_MIN_INTERVAL_S, ScheduleRules
from flowbuilder_core.shared.clock import Clock, SystemClock
from flowbuilder_core.shared.quotas import Quotas
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.triggers.schedules import GetSchedule, SchedulerLimits, StartDueSchedules
from flowbuilder_core.workflows.activation import ActivateWorkflow, DeactivateWorkflow
from flowbuilder_core.workflows.schedules import ScheduleRepository, WorkflowSchedules
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
    """The clock (APP) and every use case (REQUEST), whatever adapters stand behind them.
    Schedule triggers are checked and computed with cronsim (`CronsimCalendar`), at least
    `min_interval_s` apart; `scheduler` bounds a scheduler's tick."""

    def __init__(
        self,
        clock: Clock | None = None,
        limits: RunLimits | None = None,
        quotas: Quotas | None = None,
        *,
        min_interval_s: int | None = None,
        scheduler: SchedulerLimits | None = None,
    ) -> None:
        super().__init__()
        self._clock = clock if clock is not None else SystemClock()
        self._limits = limits if limits is not None else RunLimits()
        self._quotas = quotas if quotas is not None else Quotas()
        self._rules = ScheduleRules(CronsimCalendar(), min_interval_s or DEFAULT_MIN_INTERVAL_S)
        self._scheduler = scheduler if scheduler is not None else SchedulerLimits()

    @provide(scope=Scope.APP)
    def clock(self) -> Clock:
        return self._clock

    @provide(scope=Scope.APP)
    def limits(self) -> RunLimits:
        return self._limits

    @provide(scope=Scope.APP)
    def quotas(self) -> Quotas:
        return self._quotas

    @provide(scope=Scope.APP)
    def schedule_rules(self) -> ScheduleRules:
        return self._rules

    @provide(scope=Scope.APP)
    def scheduler_limits(self) -> SchedulerLimits:
        return self._scheduler

    @provide(scope=Scope.REQUEST)
    def workflow_schedules(
        self, book: ScheduleRepository, rules: ScheduleRules
    ) -> WorkflowSchedules:
        return WorkflowSchedules(book, rules)

    @provide(scope=Scope.APP)
    def follow(self, transactions: RunTransactions, limits: RunLimits) -> FollowExecution:
        """APP scope: it keeps the count of each user's open streams."""
        return FollowExecution(transactions, limits)

    @provide(scope=Scope.REQUEST)
    def sweep_secrets(
        self, credentials: CredentialRepository, secrets: SecretStore, uow: UnitOfWork, clock: Clock
    ) -> SweepSecrets:
        """The credentials' secrets; `WebhooksProvider` adds the webhooks' to those kept."""
        return SweepSecrets(credentials, secrets, uow, clock)

    use_cases = provide_all(
        ExecuteWorkflow,
        RetryExecution,
        GetExecution,
        ListExecutions,
        ListWorkflowExecutions,
        CancelExecution,
        FinishLostExecutions,
        ResumeParkedExecutions,
        FailUndeliveredExecutions,
        CreateCredential,
        GetCredential,
        ListCredentials,
        ReplaceCredential,
        DeleteCredential,
        ResolveCredential,
        CreateWorkflow,
        ActivateWorkflow,
        DeactivateWorkflow,
        GetWorkflow,
        ListWorkflows,
        ReplaceWorkflow,
        DeleteWorkflow,
        ValidateDefinition,
        ListWorkflowVersions,
        GetWorkflowVersion,
        GetSchedule,
        StartDueSchedules,
        scope=Scope.REQUEST,
    )


class RunsProvider(Provider):
    """What runs executions (APP): the node runners, the engine (within `engine_limits`, the
    defaults when None), and `RunExecution`, which opens a short scope of its own for each
    piece of a run's bookkeeping."""

    def __init__(
        self, allow_private_network: bool, engine_limits: EngineLimits | None = None
    ) -> None:
        super().__init__()
        self._allow_private_network = allow_private_network
        self._engine_limits = engine_limits

    @provide(scope=Scope.APP)
    async def http_runner(self) -> AsyncIterator[HttpRequestRunner]:
        runner = HttpRequestRunner(allow_private_network=self._allow_private_network)
        try:
            yield runner
        finally:
            await runner.aclose()

    @provide(scope=Scope.APP)
    def engine(self, http: HttpRequestRunner, clock: Clock) -> Engine:
        runners = {**basic_runners(), "http.request": http}
        return Engine(runners, JmesPathEvaluator(), clock, limits=self._engine_limits)

    @provide(scope=Scope.APP)
    def run_execution(
        self,
        transactions: RunTransactions,
        engine: Engine,
        credentials: CredentialResolver,
        clock: Clock,
        limits: RunLimits,
    ) -> RunExecution:
        return RunExecution(
            transactions,
            engine,
            credentials,
            clock,
            limits=limits,
            observer=PrometheusRunObserver(),
        )
