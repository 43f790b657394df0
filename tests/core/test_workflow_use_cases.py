"""The workflow use cases over the in-memory adapters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from flowbuilder_adapters.memory import (
    MemoryCredentialDirectory,
    MemoryStore,
    MemoryUnitOfWork,
    MemoryWorkflowRepository,
)
from flowbuilder_adapters.memory.executions import MemoryRateLimiter
from flowbuilder_core.executions.model import Execution, ExecutionId
from flowbuilder_core.nodes.schedule import ScheduleRules
from flowbuilder_core.shared.errors import (
    InvalidInputError,
    MalformedRequestError,
    RateLimitedError,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import encode_cursor
from flowbuilder_core.shared.quotas import QuotaExceededError, Quotas
from flowbuilder_core.workflows.errors import (
    StaleWorkflowVersionError,
    WorkflowNotFoundError,
    WorkflowVersionNotFoundError,
)
from flowbuilder_core.workflows.model import Workflow
from flowbuilder_core.workflows.ports import WorkflowFilter
from flowbuilder_core.workflows.schedules import NoScheduleBook, WorkflowSchedules
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    DeleteWorkflowCommand,
    GetWorkflow,
    GetWorkflowVersion,
    ListVersionsQuery,
    ListWorkflows,
    ListWorkflowsQuery,
    ListWorkflowVersions,
    ReplaceWorkflow,
    ReplaceWorkflowCommand,
    ValidateDefinition,
    WorkflowInput,
)

from support.factories import make_credential, make_definition, make_http_node, make_node

ALICE, BOB = Principal(UserId("user_alice")), Principal(UserId("user_bob"))
NO_SCHEDULES = WorkflowSchedules(NoScheduleBook(), ScheduleRules())


class SteppingClock:
    """Each reading is one millisecond after the last, so that every save has its own time."""

    def __init__(self) -> None:
        self._now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        self._now += timedelta(milliseconds=1)
        return self._now


class App:
    """The use cases over one shared store, each call in its own unit of work."""

    def __init__(self, quotas: Quotas | None = None) -> None:
        self.store, self.clock = MemoryStore(), SteppingClock()
        self.quotas = quotas or Quotas()
        self.writes = MemoryRateLimiter(
            self.store, self.quotas.writes_per_second, self.quotas.write_burst, "writes:"
        )

    def _repo(self) -> tuple[MemoryWorkflowRepository, MemoryUnitOfWork]:
        uow = MemoryUnitOfWork()
        return MemoryWorkflowRepository(self.store, uow), uow

    async def create(self, actor: Principal = ALICE, **fields: object) -> Workflow:
        repo, uow = self._repo()
        data = {"name": "Orders", "definition": make_definition(), **fields}
        create = CreateWorkflow(repo, self.writes, self.quotas, uow, self.clock, NO_SCHEDULES)
        return await create(actor, WorkflowInput(**data))  # type: ignore[arg-type]

    async def replace(self, actor: Principal, command: ReplaceWorkflowCommand) -> Workflow:
        repo, uow = self._repo()
        directory = MemoryCredentialDirectory(self.store)
        replace = ReplaceWorkflow(
            repo, directory, self.writes, self.quotas, uow, self.clock, NO_SCHEDULES
        )
        return await replace(actor, command)

    async def get(self, actor: Principal, workflow_id: uuid.UUID) -> Workflow:
        return await GetWorkflow(self._repo()[0])(actor, workflow_id)

    async def list(self, actor: Principal, **query: object) -> tuple[list[str], str | None]:
        page = await ListWorkflows(self._repo()[0])(actor, ListWorkflowsQuery(**query))  # type: ignore[arg-type]
        return [w.name for w in page.items], page.next_cursor

    async def delete(self, actor: Principal, command: DeleteWorkflowCommand) -> None:
        repo, uow = self._repo()
        await DeleteWorkflow(repo, self.writes, uow, self.clock, NO_SCHEDULES)(actor, command)


@pytest.fixture
def app() -> App:
    return App()


async def test_a_created_workflow_starts_at_version_one_with_its_history(app: App) -> None:
    workflow = await app.create()

    version = await GetWorkflowVersion(app._repo()[0])(ALICE, workflow.id, 1)

    assert workflow.version == 1
    assert version.definition == workflow.definition


async def test_another_users_workflow_is_not_found(app: App) -> None:
    workflow = await app.create()

    with pytest.raises(WorkflowNotFoundError):
        await app.get(BOB, workflow.id)
    with pytest.raises(WorkflowNotFoundError):
        await app.replace(BOB, ReplaceWorkflowCommand(workflow.id, WorkflowInput("Mine")))
    with pytest.raises(WorkflowNotFoundError):
        await app.delete(BOB, DeleteWorkflowCommand(workflow.id))
    assert (await app.get(ALICE, workflow.id)).name == "Orders"


async def test_replace_bumps_the_version_and_keeps_every_version(app: App) -> None:
    workflow = await app.create()

    replaced = await app.replace(
        ALICE, ReplaceWorkflowCommand(workflow.id, WorkflowInput("Renamed"), if_match=[1])
    )
    page = await ListWorkflowVersions(app._repo()[0])(ALICE, ListVersionsQuery(workflow.id))

    assert replaced.version == 2
    assert [(v.version, v.name) for v in page.items] == [(2, "Renamed"), (1, "Orders")]


async def test_replace_omitting_optional_fields_resets_them_to_defaults(app: App) -> None:
    workflow = await app.create(tags=["a"], description="text")

    replaced = await app.replace(ALICE, ReplaceWorkflowCommand(workflow.id, WorkflowInput("R")))

    assert (replaced.tags, replaced.description, replaced.definition.nodes) == ((), "", ())


async def test_a_stale_if_match_or_body_version_is_a_failed_precondition(app: App) -> None:
    workflow = await app.create()
    await app.replace(ALICE, ReplaceWorkflowCommand(workflow.id, WorkflowInput("Two")))

    with pytest.raises(StaleWorkflowVersionError):
        await app.replace(ALICE, ReplaceWorkflowCommand(workflow.id, WorkflowInput("X"), [1]))
    with pytest.raises(StaleWorkflowVersionError):
        await app.replace(ALICE, ReplaceWorkflowCommand(workflow.id, WorkflowInput("X"), version=1))
    with pytest.raises(StaleWorkflowVersionError):
        await app.delete(ALICE, DeleteWorkflowCommand(workflow.id, if_match=[1]))
    assert (await app.get(ALICE, workflow.id)).name == "Two"


async def test_an_invalid_replace_changes_nothing(app: App) -> None:
    workflow = await app.create()

    with pytest.raises(InvalidInputError):
        await app.replace(
            ALICE, ReplaceWorkflowCommand(workflow.id, WorkflowInput("X", definition={"a": 1}))
        )

    assert (await app.get(ALICE, workflow.id)).version == 1


async def test_a_deleted_workflow_is_gone_but_its_versions_remain_stored(app: App) -> None:
    workflow = await app.create()

    await app.delete(ALICE, DeleteWorkflowCommand(workflow.id))

    with pytest.raises(WorkflowNotFoundError):
        await app.get(ALICE, workflow.id)
    assert await app.list(ALICE) == ([], None)
    assert await app._repo()[0].version(workflow.id, 1) is not None


async def test_lists_are_newest_first_and_pages_follow_the_cursor(app: App) -> None:
    for index in range(5):
        await app.create(name=f"w{index}")

    first, cursor = await app.list(ALICE, limit=2)
    second, cursor2 = await app.list(ALICE, limit=2, cursor=cursor)
    third, end = await app.list(ALICE, limit=2, cursor=cursor2)

    assert (first, second, third, end) == (["w4", "w3"], ["w2", "w1"], ["w0"], None)


async def test_a_cursor_is_refused_for_another_user_or_other_filters(app: App) -> None:
    for index in range(3):
        await app.create(name=f"w{index}")
    _, cursor = await app.list(ALICE, limit=1)

    with pytest.raises(MalformedRequestError):
        await app.list(BOB, limit=1, cursor=cursor)
    with pytest.raises(MalformedRequestError):
        await app.list(ALICE, limit=1, cursor=cursor, where=WorkflowFilter(tag="x"))


async def test_lists_filter_by_tag_and_by_name_substring(app: App) -> None:
    await app.create(name="Sync Orders", tags=["orders"])
    await app.create(name="Nightly report", tags=["reports"])
    await app.create(BOB, name="Bob's orders", tags=["orders"])

    by_tag, _ = await app.list(ALICE, where=WorkflowFilter(tag="orders"))
    by_name, _ = await app.list(ALICE, where=WorkflowFilter(q="ORDER"))

    assert (by_tag, by_name) == (["Sync Orders"], ["Sync Orders"])


async def test_limits_outside_one_to_a_hundred_are_invalid(app: App) -> None:
    for limit in (0, 101):
        with pytest.raises(InvalidInputError):
            await app.list(ALICE, limit=limit)


async def test_a_missing_version_is_not_found(app: App) -> None:
    workflow = await app.create()

    for version in (0, 2, -1):
        with pytest.raises(WorkflowVersionNotFoundError):
            await GetWorkflowVersion(app._repo()[0])(ALICE, workflow.id, version)


async def test_validation_checks_runnability_against_the_callers_credentials() -> None:
    store = MemoryStore()
    credential = make_credential()
    store.credentials[credential.id] = credential
    definition = {
        "nodes": [make_node(), {**make_http_node(), "credential_id": str(credential.id)}],
        "edges": [{"source": "start", "target": "fetch"}],
    }
    validate = ValidateDefinition(
        MemoryCredentialDirectory(store),
        MemoryWorkflowRepository(store, MemoryUnitOfWork()),
        NO_SCHEDULES,
    )

    mine = await validate(ALICE, definition)
    theirs = await validate(BOB, definition)

    assert (mine.valid, mine.runnable) == (True, True)
    assert (theirs.valid, theirs.runnable) == (True, False)
    assert [p.field for p in theirs.problems] == ["/definition/nodes/1/credential_id"]


async def test_an_ill_formed_definition_is_neither_valid_nor_runnable() -> None:
    store = MemoryStore()
    workflows = MemoryWorkflowRepository(store, MemoryUnitOfWork())
    validate = ValidateDefinition(MemoryCredentialDirectory(store), workflows, NO_SCHEDULES)
    report = await validate(ALICE, {"nodes": [{"id": "x"}]})

    assert (report.valid, report.runnable) == (False, False)
    assert {p.blocks.value for p in report.problems} == {"save"}


async def test_a_forged_cursor_with_a_nonsense_position_is_refused(app: App) -> None:
    # The digest's key is public (it guards integrity, not secrecy), so a cursor can be forged;
    # its position must still never reach an adapter unparsed.
    forged = encode_cursor(("not-a-date", "not-a-uuid"), "workflows|user_alice|tag=None|q=None")

    with pytest.raises(MalformedRequestError):
        await app.list(ALICE, cursor=forged)


async def test_filters_that_no_database_could_match_are_invalid(app: App) -> None:
    for where in (
        WorkflowFilter(q="a\x00"),
        WorkflowFilter(tag="t" * 51),
        WorkflowFilter(q="q" * 201),
    ):
        with pytest.raises(InvalidInputError):
            await app.list(ALICE, where=where)


async def test_a_create_past_the_workflow_quota_is_refused_with_the_limit() -> None:
    app = App(Quotas(max_workflows=2))
    first = await app.create()
    await app.create()

    with pytest.raises(QuotaExceededError) as refused:
        await app.create()
    await app.delete(ALICE, DeleteWorkflowCommand(first.id))
    third = await app.create()

    assert refused.value.extensions() == {"limit": 2}
    assert third.version == 1, "a deleted workflow frees its place"
    names, _ = await app.list(ALICE)
    assert len(names) == 2


async def test_writes_past_the_burst_are_rate_limited_with_a_retry_after() -> None:
    app = App(Quotas(writes_per_second=1, write_burst=2))
    await app.create()
    await app.create()

    with pytest.raises(RateLimitedError) as limited:
        await app.create()

    assert limited.value.retry_after >= 1
    assert await app.create(BOB) is not None, "each user has a bucket of their own"


async def test_a_save_keeps_the_newest_versions_and_those_an_execution_ran() -> None:
    app = App(Quotas(versions_kept=2))
    workflow = await app.create()
    ran = Execution(
        id=ExecutionId(uuid.uuid4()),
        owner_id=ALICE.user_id,
        workflow_id=workflow.id,
        workflow_version=2,
        created_at=app.clock.now(),
    )
    for n in range(2, 6):
        fields = WorkflowInput(f"v{n}", definition=make_definition())
        workflow = await app.replace(ALICE, ReplaceWorkflowCommand(workflow.id, fields))
        if n == 2:
            app.store.executions[ran.id] = ran

    kept = sorted(v for (w, v) in app.store.versions if w == workflow.id)

    assert kept == [2, 4, 5]
