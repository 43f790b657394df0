"""The WorkflowRepository contract (with its UnitOfWork), run against every adapter through a
real dishka container: memory, SQLite and Postgres."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dishka import AsyncContainer, make_async_container
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql import create_engine
from flowbuilder_adapters.sql.migrate import upgrade
from flowbuilder_adapters.wiring import CoreProvider, SqlProvider
from flowbuilder_core.executions.model import Execution, ExecutionId
from flowbuilder_core.executions.ports import ExecutionRepository
from flowbuilder_core.shared.errors import (
    ConflictError,
    DependencyUnavailableError,
    MalformedRequestError,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest, Position
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.errors import ConcurrentUpdateError, StaleWorkflowVersionError
from flowbuilder_core.workflows.model import (
    Definition,
    Edge,
    Node,
    Workflow,
    WorkflowFields,
    WorkflowId,
)
from flowbuilder_core.workflows.model import (
    Position as NodePosition,
)
from flowbuilder_core.workflows.ports import WorkflowFilter, WorkflowRepository
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    ListWorkflows,
    ListWorkflowsQuery,
    ReplaceWorkflow,
    ReplaceWorkflowCommand,
    WorkflowInput,
)

from support.contract import T0, sql_extras

OWNER = UserId("user_owner")
OTHER = UserId("user_other")
EVERYTHING = WorkflowFilter()


# ---------------------------------------------------------------------------------------------
# Factories and helpers
# ---------------------------------------------------------------------------------------------


def make_definition() -> Definition:
    return Definition(
        nodes=(
            Node("start", "trigger.manual", {}, None, NodePosition(0, 0)),
            Node(
                "fetch",
                "http.request",
                {"method": "GET", "url": "https://api.example.com/orders", "timeout_s": 2.5},
                uuid.UUID("9f1e0000-0000-4000-8000-000000000001"),
                NodePosition(240.5, 80),
            ),
            Node("check", "logic.if", {"condition": "nodes.fetch.status == `200`"}),
            Node("done", "data.set", {"value": {"ok": True, "list": [1, "two", None]}}),
        ),
        edges=(
            Edge("start", "fetch"),
            Edge("fetch", "check"),
            Edge("check", "done", "true"),
        ),
    )


def make_workflow(**overrides: Any) -> Workflow:
    fields: dict[str, Any] = {
        "id": WorkflowId(uuid.uuid4()),
        "owner_id": OWNER,
        "name": "Notify on new order",
        "description": "Sends a message for each order.",
        "tags": ("orders", "notify"),
        "definition": make_definition(),
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    return Workflow(**(fields | overrides))


def replaced(workflow: Workflow, *, name: str = "Renamed", tags: Sequence[str] = ()) -> Workflow:
    changed = dataclasses.replace(workflow)
    changed.replace(
        WorkflowFields(name=name, tags=tuple(tags), definition=Definition()),
        at=workflow.updated_at + timedelta(seconds=1),
    )
    return changed


async def add_committed(container: AsyncContainer, *workflows: Workflow) -> None:
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        for workflow in workflows:
            await repository.add(workflow)
        await (await scope.get(UnitOfWork)).commit()


async def get(container: AsyncContainer, workflow_id: WorkflowId) -> Workflow | None:
    async with container() as scope:
        repository: WorkflowRepository = await scope.get(WorkflowRepository)
        return await repository.get(workflow_id)


async def page(
    container: AsyncContainer,
    where: WorkflowFilter = EVERYTHING,
    limit: int = 100,
    after: Position | None = None,
    owner: UserId = OWNER,
) -> list[Workflow]:
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        return list(await repository.page(owner, where, PageRequest(limit, after)))


def position_of(workflow: Workflow) -> Position:
    return (workflow.created_at.isoformat(), str(workflow.id))


def newest_first(workflows: Sequence[Workflow]) -> list[uuid.UUID]:
    ordered = sorted(workflows, key=lambda w: (w.created_at, str(w.id)), reverse=True)
    return [w.id for w in ordered]


def ids(workflows: Sequence[Workflow]) -> list[uuid.UUID]:
    return [w.id for w in workflows]


# ---------------------------------------------------------------------------------------------
# Storing and reading
# ---------------------------------------------------------------------------------------------


async def test_a_committed_workflow_reads_back_exactly_as_it_was_added(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow(created_at=T0 + timedelta(microseconds=123457))
    workflow.updated_at = workflow.created_at

    await add_committed(container, workflow)

    assert await get(container, workflow.id) == workflow


async def test_times_read_back_as_the_same_aware_instant_whatever_zone_they_were_written_in(
    container: AsyncContainer,
) -> None:
    paris = datetime(2026, 3, 1, 14, 30, 0, 5, tzinfo=ZoneInfo("Europe/Paris"))
    workflow = make_workflow(created_at=paris, updated_at=paris)

    await add_committed(container, workflow)

    found = await get(container, workflow.id)
    assert found is not None
    assert found.created_at == paris
    assert found.created_at.utcoffset() is not None


async def test_an_unknown_id_reads_as_none(container: AsyncContainer) -> None:
    assert await get(container, WorkflowId(uuid.uuid4())) is None


async def test_the_first_version_is_stored_with_the_workflow(container: AsyncContainer) -> None:
    workflow = make_workflow()

    await add_committed(container, workflow)

    async with container() as scope:
        found = await (await scope.get(WorkflowRepository)).version(workflow.id, 1)
    assert found == workflow.current_version()


async def test_changes_without_commit_are_discarded(container: AsyncContainer) -> None:
    workflow = make_workflow()

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        await repository.add(workflow)
        assert await repository.get(workflow.id) == workflow  # the scope sees its own write

    assert await get(container, workflow.id) is None
    assert await page(container) == []


async def test_a_scope_may_keep_working_after_a_commit(container: AsyncContainer) -> None:
    first, second, third = make_workflow(), make_workflow(), make_workflow()

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        uow = await scope.get(UnitOfWork)
        await repository.add(first)
        await uow.commit()
        await repository.add(second)
        await uow.commit()
        await repository.add(third)

    assert await get(container, first.id) == first
    assert await get(container, second.id) == second
    assert await get(container, third.id) is None


async def test_adding_a_workflow_whose_id_exists_is_a_conflict(container: AsyncContainer) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        with pytest.raises(ConflictError):
            await repository.add(make_workflow(id=workflow.id, name="Impostor"))
        assert await repository.get(workflow.id) == workflow  # the scope is still usable


# ---------------------------------------------------------------------------------------------
# Updating and deleting
# ---------------------------------------------------------------------------------------------


async def test_an_update_stores_the_workflow_and_its_new_version(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    changed = replaced(workflow, name="Renamed", tags=("billing",))

    async with container() as scope:
        await (await scope.get(WorkflowRepository)).update(changed, expected_version=1)
        await (await scope.get(UnitOfWork)).commit()

    assert await get(container, workflow.id) == changed
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        assert await repository.version(workflow.id, 2) == changed.current_version()
        assert await repository.version(workflow.id, 1) == workflow.current_version()


async def test_an_update_replaces_the_tags_the_tag_filter_sees(container: AsyncContainer) -> None:
    workflow = make_workflow(tags=("orders",))
    await add_committed(container, workflow)

    async with container() as scope:
        changed = replaced(workflow, tags=("billing",))
        await (await scope.get(WorkflowRepository)).update(changed, expected_version=1)
        await (await scope.get(UnitOfWork)).commit()

    assert await page(container, WorkflowFilter(tag="orders")) == []
    assert ids(await page(container, WorkflowFilter(tag="billing"))) == [workflow.id]


async def test_an_update_after_a_read_in_the_same_scope_leaves_exactly_the_new_tags_and_credentials(
    container: AsyncContainer,
) -> None:
    # The repository remembers what it read and rewrites only the rows that changed: the
    # filters must see the same as after a blind rewrite, over three saves in one scope.
    kept_credential = uuid.UUID("9f1e0000-0000-4000-8000-000000000001")
    new_credential = uuid.UUID("9f1e0000-0000-4000-8000-000000000002")
    workflow = make_workflow(tags=("orders", "notify"))
    await add_committed(container, workflow)

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        current = await repository.get(workflow.id)
        assert current is not None
        nodes = (*current.definition.nodes, Node("mail", "http.request", {}, new_credential))
        current.replace(
            WorkflowFields(
                name=current.name,
                tags=("notify", "billing", "billing"),
                definition=Definition(nodes=nodes, edges=current.definition.edges),
            ),
            at=T0 + timedelta(seconds=1),
        )
        await repository.update(current, expected_version=1)
        unchanged_tags = dataclasses.replace(current)
        unchanged_tags.replace(
            WorkflowFields(
                name="Only renamed", tags=current.tags, definition=Definition(nodes=nodes[1:2])
            ),
            at=T0 + timedelta(seconds=2),
        )
        await repository.update(unchanged_tags, expected_version=2)
        await (await scope.get(UnitOfWork)).commit()

    assert await page(container, WorkflowFilter(tag="orders")) == []
    assert ids(await page(container, WorkflowFilter(tag="notify"))) == [workflow.id]
    assert ids(await page(container, WorkflowFilter(tag="billing"))) == [workflow.id]
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        kept = await repository.using_credential(OWNER, kept_credential)
        dropped = await repository.using_credential(OWNER, new_credential)
    assert [ref.id for ref in kept] == [workflow.id]
    assert dropped == []


async def test_an_update_with_a_stale_expected_version_raises_concurrent_update_error(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    async with container() as scope:
        await (await scope.get(WorkflowRepository)).update(replaced(workflow), expected_version=1)
        await (await scope.get(UnitOfWork)).commit()

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        with pytest.raises(ConcurrentUpdateError):
            await repository.update(replaced(workflow, name="Late"), expected_version=1)

    found = await get(container, workflow.id)
    assert found is not None
    assert (found.version, found.name) == (2, "Renamed")


async def test_of_two_scopes_racing_to_update_the_same_version_exactly_one_wins(
    container: AsyncContainer, adapter_name: str
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    # Both scopes hold their transaction before either writes. SQLite's single connection
    # serialises scopes by design (engine.py), so there the second waits for the first to end.
    both_started = asyncio.Barrier(2 if adapter_name != "sqlite" else 1)

    async def save(name: str) -> str:
        async with container() as scope:
            repository = await scope.get(WorkflowRepository)
            assert await repository.get(workflow.id) is not None
            await both_started.wait()
            await repository.update(replaced(workflow, name=name), expected_version=1)
            await (await scope.get(UnitOfWork)).commit()
        return name

    outcomes = await asyncio.gather(save("first"), save("second"), return_exceptions=True)

    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ConcurrentUpdateError)
    found = await get(container, workflow.id)
    assert found is not None
    assert (found.version, found.name) == (2, winners[0])


async def test_a_deleted_workflow_is_hidden_from_get_and_page_but_its_versions_remain(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow(tags=("orders",))
    await add_committed(container, workflow)

    async with container() as scope:
        await (await scope.get(WorkflowRepository)).delete(
            workflow.id, expected_version=1, at=T0 + timedelta(hours=1)
        )
        await (await scope.get(UnitOfWork)).commit()

    assert await get(container, workflow.id) is None
    assert await page(container) == []
    assert await page(container, WorkflowFilter(tag="orders")) == []
    assert await page(container, WorkflowFilter(q="notify")) == []
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        assert await repository.version(workflow.id, 1) == workflow.current_version()
        versions = await repository.versions(workflow.id, PageRequest(10, None))
        assert [v.version for v in versions] == [1]


async def test_delete_with_a_stale_expected_version_raises_concurrent_update_error(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        with pytest.raises(ConcurrentUpdateError):
            await repository.delete(workflow.id, expected_version=2, at=T0)

    assert await get(container, workflow.id) == workflow


async def test_a_deleted_workflow_can_be_neither_updated_nor_deleted_again(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    async with container() as scope:
        await (await scope.get(WorkflowRepository)).delete(workflow.id, expected_version=1, at=T0)
        await (await scope.get(UnitOfWork)).commit()

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        with pytest.raises(ConcurrentUpdateError):
            await repository.update(replaced(workflow), expected_version=1)
        with pytest.raises(ConcurrentUpdateError):
            await repository.delete(workflow.id, expected_version=1, at=T0)


# ---------------------------------------------------------------------------------------------
# Lists
# ---------------------------------------------------------------------------------------------


async def test_a_page_is_newest_first_and_ties_on_created_at_are_ordered_by_id(
    container: AsyncContainer,
) -> None:
    tied = [make_workflow(created_at=T0 + timedelta(seconds=5)) for _ in range(4)]
    others = [make_workflow(created_at=T0 + timedelta(seconds=s)) for s in (1, 9, 3)]
    await add_committed(container, *tied, *others)

    found = await page(container)

    assert ids(found) == newest_first([*tied, *others])


async def test_a_page_holds_limit_plus_one_rows_and_continues_after_a_keyset_position(
    container: AsyncContainer,
) -> None:
    workflows = [
        make_workflow(created_at=T0 + timedelta(seconds=s % 3, microseconds=s)) for s in range(8)
    ]
    workflows += [make_workflow(created_at=T0 + timedelta(seconds=1)) for _ in range(3)]
    await add_committed(container, *workflows)
    expected = newest_first(workflows)

    seen: list[uuid.UUID] = []
    after: Position | None = None
    while True:
        rows = await page(container, limit=3, after=after)
        assert len(rows) <= 4
        seen += ids(rows[:3])
        if len(rows) <= 3:
            break
        after = position_of(rows[2])

    assert seen == expected


async def test_a_page_lists_only_the_owners_workflows(container: AsyncContainer) -> None:
    mine, theirs = make_workflow(), make_workflow(owner_id=OTHER, tags=("orders",))
    await add_committed(container, mine, theirs)

    assert ids(await page(container)) == [mine.id]
    assert ids(await page(container, WorkflowFilter(tag="orders"))) == [mine.id]
    assert ids(await page(container, owner=OTHER)) == [theirs.id]


async def test_the_tag_filter_matches_one_whole_tag_and_pages_by_keyset(
    container: AsyncContainer,
) -> None:
    tagged = [
        make_workflow(tags=("orders", "x"), created_at=T0 + timedelta(seconds=s % 2))
        for s in range(5)
    ]
    untagged = [make_workflow(tags=t) for t in [("order",), ("Orders",), ("orders-x",), ()]]
    await add_committed(container, *tagged, *untagged)
    where = WorkflowFilter(tag="orders")

    first = await page(container, where, limit=2)
    rest = await page(container, where, limit=10, after=position_of(first[1]))

    assert ids(first[:2]) + ids(rest) == newest_first(tagged)
    assert len(first) == 3


async def test_the_q_filter_matches_a_name_substring_ignoring_case(
    container: AsyncContainer,
) -> None:
    hits = [
        make_workflow(name="Nightly REPORT", created_at=T0 + timedelta(seconds=1)),
        make_workflow(name="report builder", created_at=T0 + timedelta(seconds=2)),
        make_workflow(name="Weekly RePoRts", created_at=T0 + timedelta(seconds=3)),
    ]
    await add_committed(container, *hits, make_workflow(name="Repo rt"))

    first = await page(container, WorkflowFilter(q="rEpOrT"), limit=2)
    rest = await page(container, WorkflowFilter(q="rEpOrT"), after=position_of(first[1]))

    assert ids(first[:2]) + ids(rest) == newest_first(hits)


async def test_percent_underscore_and_backslash_in_q_are_literal(
    container: AsyncContainer,
) -> None:
    percent, underscore, backslash, plain = (
        make_workflow(name="100% done"),
        make_workflow(name="snake_case"),
        make_workflow(name="C:\\temp"),
        make_workflow(name="100 percent, snakeXcase, C:temp"),
    )
    await add_committed(container, percent, underscore, backslash, plain)

    assert ids(await page(container, WorkflowFilter(q="0%"))) == [percent.id]
    assert ids(await page(container, WorkflowFilter(q="%"))) == [percent.id]
    assert ids(await page(container, WorkflowFilter(q="e_c"))) == [underscore.id]
    assert ids(await page(container, WorkflowFilter(q="_"))) == [underscore.id]
    assert ids(await page(container, WorkflowFilter(q=":\\t"))) == [backslash.id]


async def test_tag_and_q_filters_combine(container: AsyncContainer) -> None:
    both = make_workflow(name="Order digest", tags=("orders",))
    await add_committed(
        container,
        both,
        make_workflow(name="Order digest", tags=("billing",)),
        make_workflow(name="Something else", tags=("orders",)),
    )

    found = await page(container, WorkflowFilter(tag="orders", q="DIGEST"))

    assert ids(found) == [both.id]


async def test_pages_never_repeat_or_skip_an_item_under_concurrent_inserts(
    container: AsyncContainer,
) -> None:
    existing = [
        make_workflow(created_at=T0 + timedelta(seconds=s // 2), tags=("orders",)) for s in range(9)
    ]
    await add_committed(container, *existing)
    later = T0 + timedelta(minutes=1)

    for where in (WorkflowFilter(), WorkflowFilter(tag="orders"), WorkflowFilter(q="NOTIFY")):
        at_start = ids(await page(container, where))
        seen: list[uuid.UUID] = []
        after: Position | None = None
        while True:
            rows = await page(container, where, limit=2, after=after)
            seen += ids(rows[:2])
            if len(rows) <= 2:
                break
            after = position_of(rows[1])
            later += timedelta(seconds=1)
            await add_committed(container, make_workflow(created_at=later, tags=("orders",)))

        assert seen == at_start
    assert at_start[-9:] == newest_first(existing)


# ---------------------------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------------------------


async def test_versions_are_newest_first_and_continue_after_a_keyset_position(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    current = workflow
    for number in range(2, 6):
        changed = replaced(current, name=f"v{number}")
        async with container() as scope:
            await (await scope.get(WorkflowRepository)).update(
                changed, expected_version=current.version
            )
            await (await scope.get(UnitOfWork)).commit()
        current = changed

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        first = await repository.versions(workflow.id, PageRequest(2, None))
        second = await repository.versions(workflow.id, PageRequest(2, (first[1].version,)))
        last = await repository.versions(workflow.id, PageRequest(2, (second[1].version,)))
        none = await repository.version(workflow.id, 6)

    assert [v.version for v in first] == [5, 4, 3]
    assert [v.version for v in second] == [3, 2, 1]
    assert [v.version for v in last] == [1]
    assert [v.name for v in first] == ["v5", "v4", "v3"]
    assert none is None


async def test_an_unknown_workflow_has_no_versions(container: AsyncContainer) -> None:
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        assert await repository.versions(WorkflowId(uuid.uuid4()), PageRequest(5, None)) == []
        assert await repository.version(WorkflowId(uuid.uuid4()), 1) is None


async def test_a_version_number_no_store_could_hold_is_simply_not_found(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        found = [await repository.version(workflow.id, n) for n in (2**31, 2**63, -(2**63))]

    assert found == [None, None, None]


@pytest.mark.parametrize("after", [2**31, -(2**31) - 1, 2**63])
async def test_a_version_position_beyond_the_stores_integers_is_a_malformed_request(
    container: AsyncContainer, adapter_name: str, after: int
) -> None:
    if adapter_name not in ("sqlite", "postgres"):
        pytest.skip("only the SQL stores give versions a width to exceed")
    workflow = make_workflow()
    await add_committed(container, workflow)

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        with pytest.raises(MalformedRequestError):
            await repository.versions(workflow.id, PageRequest(5, (after,)))
        largest = await repository.versions(workflow.id, PageRequest(5, (2**31 - 1,)))

    assert [v.version for v in largest] == [1]


# ---------------------------------------------------------------------------------------------
# Through the use cases
# ---------------------------------------------------------------------------------------------

ALICE = Principal(UserId("user_alice"))


async def create(container: AsyncContainer, name: str, **fields: Any) -> Workflow:
    async with container() as scope:
        return await (await scope.get(CreateWorkflow))(ALICE, WorkflowInput(name, **fields))


async def test_replacing_with_a_stale_if_match_is_a_stale_workflow_version_error(
    container: AsyncContainer,
) -> None:
    workflow = await create(container, "Daily digest")
    async with container() as scope:
        command = ReplaceWorkflowCommand(workflow.id, WorkflowInput("Second"), if_match=[1])
        await (await scope.get(ReplaceWorkflow))(ALICE, command)

    async with container() as scope:
        command = ReplaceWorkflowCommand(workflow.id, WorkflowInput("Third"), if_match=[1])
        with pytest.raises(StaleWorkflowVersionError) as raised:
            await (await scope.get(ReplaceWorkflow))(ALICE, command)

    assert raised.value.current == 2


async def test_listing_through_the_use_case_walks_every_page_with_real_cursors(
    container: AsyncContainer,
) -> None:
    created = [await create(container, f"Flow {n}", tags=["t"]) for n in range(7)]

    names: list[str] = []
    cursor: str | None = None
    while True:
        async with container() as scope:
            query = ListWorkflowsQuery(limit=3, cursor=cursor, where=WorkflowFilter(tag="t"))
            result = await (await scope.get(ListWorkflows))(ALICE, query)
        names += [w.name for w in result.items]
        if result.next_cursor is None:
            break
        cursor = result.next_cursor

    assert names == [w.name for w in reversed(created)]


# ---------------------------------------------------------------------------------------------
# SQL only
# ---------------------------------------------------------------------------------------------


async def test_an_unreachable_database_is_dependency_unavailable() -> None:
    url = "postgresql+asyncpg://nobody:secret@127.0.0.1:9/flowbuilder"
    container = make_async_container(CoreProvider(), SqlProvider(url), *sql_extras())
    try:
        async with container() as scope:
            with pytest.raises(DependencyUnavailableError) as raised:
                await scope.get(WorkflowRepository)
    finally:
        await container.close()

    assert str(raised.value) == "The database is unavailable."


@pytest.mark.postgres
async def test_a_connection_lost_mid_scope_is_dependency_unavailable_and_the_next_scope_recovers(
    postgres_url: str,
) -> None:
    await upgrade(postgres_url)
    container = make_async_container(CoreProvider(), SqlProvider(postgres_url), *sql_extras())
    killer = create_engine(postgres_url)
    try:
        async with container() as scope:
            connection = await scope.get(AsyncConnection)
            repository = await scope.get(WorkflowRepository)
            pid = (await connection.execute(text("select pg_backend_pid()"))).scalar_one()
            async with killer.connect() as other:
                await other.execute(text("select pg_terminate_backend(:pid)"), {"pid": pid})

            with pytest.raises(DependencyUnavailableError) as raised:
                await repository.get(WorkflowId(uuid.uuid4()))

        assert str(raised.value) == "The database is unavailable."
        assert await get(container, WorkflowId(uuid.uuid4())) is None
    finally:
        await killer.dispose()
        await container.close()


async def test_summaries_list_what_page_lists_without_definitions(
    container: AsyncContainer,
) -> None:
    workflows = [make_workflow(created_at=T0 + timedelta(seconds=s)) for s in range(5)]
    await add_committed(container, *workflows)

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        request = PageRequest(3, None)
        pages = await repository.page(OWNER, EVERYTHING, request)
        summaries = await repository.summaries(OWNER, EVERYTHING, request)
        tagged = await repository.summaries(OWNER, WorkflowFilter(tag="orders"), request)

    assert list(summaries) == [w.summary() for w in pages]
    assert [s.id for s in tagged] == [w.id for w in pages]
    assert not hasattr(summaries[0], "definition")


async def test_counts_are_of_live_workflows_and_stop_at_the_bound(
    container: AsyncContainer,
) -> None:
    mine = [make_workflow(created_at=T0 + timedelta(seconds=i)) for i in range(4)]
    theirs = make_workflow(owner_id=UserId("user_other"))
    await add_committed(container, *mine, theirs)
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        await repository.delete(mine[0].id, expected_version=1, at=T0)
        await (await scope.get(UnitOfWork)).commit()

    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        counted = (await repository.count(OWNER, 100), await repository.count(OWNER, 2))

    assert counted == (3, 2)


async def test_pruning_keeps_the_newest_versions_and_those_an_execution_ran(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    for _ in range(4):  # versions 2 to 5
        async with container() as scope:
            repository = await scope.get(WorkflowRepository)
            current = await repository.get(workflow.id)
            assert current is not None
            workflow = replaced(current)
            await repository.update(workflow, expected_version=current.version)
            await (await scope.get(UnitOfWork)).commit()
    ran = Execution(
        id=ExecutionId(uuid.uuid4()),
        owner_id=OWNER,
        workflow_id=workflow.id,
        workflow_version=2,
        created_at=T0,
    )
    async with container() as scope:
        await (await scope.get(ExecutionRepository)).add(ran)
        await (await scope.get(UnitOfWork)).commit()

    async with container() as scope:
        pruned = await (await scope.get(WorkflowRepository)).prune_versions(workflow, 2)
        await (await scope.get(UnitOfWork)).commit()
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        kept = [n for n in range(1, 6) if await repository.version(workflow.id, n) is not None]

    assert (pruned, kept) == (2, [2, 4, 5])


async def test_switching_active_keeps_the_version_and_survives_a_replace(
    container: AsyncContainer,
) -> None:
    workflow = make_workflow()
    await add_committed(container, workflow)
    async with container() as scope:
        await (await scope.get(WorkflowRepository)).set_active(workflow.id, True)
        await (await scope.get(UnitOfWork)).commit()
    activated = await get(container, workflow.id)
    assert activated is not None
    async with container() as scope:
        repository = await scope.get(WorkflowRepository)
        await repository.update(replaced(activated), expected_version=1)
        await (await scope.get(UnitOfWork)).commit()
    after_replace = await get(container, workflow.id)
    listed = await page(container)

    assert (activated.active, activated.version) == (True, 1)
    assert after_replace is not None
    assert (after_replace.active, after_replace.version) == (True, 2)
    assert [w.active for w in listed] == [True]
