"""Keep workflows in a store of your own: implement the `WorkflowRepository` port.

`DocumentWorkflowRepository` keeps each workflow, and each of its versions, as a JSON document
under a key, as a key-value or document store would (a dict stands in for it here). Its
writes join the unit of work of the in-memory adapters that keep everything else: `stage()`
applies every change at commit, once every check has passed, or none of them. Over a database
of your own, your `Storage` would open one transaction for all the adapters instead.

The project's contract suite checks it as it checks the built-in adapters (docs/library.md):

    FLOWBUILDER_CONTRACT_STORAGE=custom_repository:contract_storage PYTHONPATH=examples \\
        .venv/bin/pytest tests/contract/test_workflow_repository.py -k custom

Run it: python examples/custom_repository.py
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from flowbuilder_adapters.memory import MemoryStorage, MemoryUnitOfWork
from flowbuilder_core import (
    Adapters,
    ConcurrentUpdateError,
    ConflictError,
    Definition,
    Edge,
    FlowBuilder,
    ListVersionsQuery,
    Node,
    OnError,
    PageRequest,
    Position,
    Principal,
    ReplaceWorkflowCommand,
    RetryPolicy,
    UserId,
    Workflow,
    WorkflowFilter,
    WorkflowId,
    WorkflowInput,
    WorkflowRef,
    WorkflowRepository,
    WorkflowSummary,
    WorkflowVersion,
)

RanVersions = Callable[[WorkflowId], set[int]]
"""The versions of a workflow that an execution ran: pruning keeps them."""


class DocumentWorkflowRepository(WorkflowRepository):
    """Workflows as JSON documents: `workflow/<id>` is the current one, `version/<id>/<n>` each
    version. Reads see the committed documents and this unit of work's own writes."""

    def __init__(
        self, documents: dict[str, str], uow: MemoryUnitOfWork, ran_versions: RanVersions
    ) -> None:
        self._documents, self._uow, self._ran_versions = documents, uow, ran_versions
        self._staged: dict[str, str] = {}

    async def get(self, workflow_id: WorkflowId) -> Workflow | None:
        found = self._current(workflow_id)
        return None if found is None or found.is_deleted else found

    async def add(self, workflow: Workflow) -> None:
        if self._current(workflow.id) is not None:
            raise ConflictError("A workflow with this id already exists.")
        self._write(workflow, expected_version=None, with_version=True)

    async def update(self, workflow: Workflow, *, expected_version: int) -> None:
        self._expect(workflow.id, expected_version)
        self._write(workflow, expected_version=expected_version, with_version=True)

    async def delete(self, workflow_id: WorkflowId, *, expected_version: int, at: datetime) -> None:
        deleted = dataclasses.replace(self._expect(workflow_id, expected_version), deleted_at=at)
        self._write(deleted, expected_version=expected_version, with_version=False)

    async def page(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[Workflow]:
        rows = [
            w
            for w in self._workflows()
            if w.owner_id == owner
            and not w.is_deleted
            and (where.tag is None or where.tag in w.tags)
            and (where.q is None or where.q.lower() in w.name.lower())
        ]
        if request.after is not None:  # the keyset position (created_at, id) of the last row
            after = (datetime.fromisoformat(str(request.after[0])), str(request.after[1]))
            rows = [w for w in rows if (w.created_at, str(w.id)) < after]
        rows.sort(key=lambda w: (w.created_at, str(w.id)), reverse=True)
        return rows[: request.limit + 1]

    async def summaries(
        self, owner: UserId, where: WorkflowFilter, request: PageRequest
    ) -> Sequence[WorkflowSummary]:
        return [w.summary() for w in await self.page(owner, where, request)]

    async def versions(
        self, workflow_id: WorkflowId, request: PageRequest
    ) -> Sequence[WorkflowVersion]:
        found = [_load_version(text) for text in self._matching(f"version/{workflow_id}/")]
        if request.after is not None:
            found = [v for v in found if v.version < int(request.after[0])]
        found.sort(key=lambda v: v.version, reverse=True)
        return found[: request.limit + 1]

    async def version(self, workflow_id: WorkflowId, version: int) -> WorkflowVersion | None:
        text = self._read(f"version/{workflow_id}/{version}")
        return None if text is None else _load_version(text)

    async def using_credential(
        self, owner: UserId, credential_id: uuid.UUID
    ) -> Sequence[WorkflowRef]:
        return [
            WorkflowRef(w.id, w.name)
            for w in sorted(
                self._workflows(), key=lambda w: (w.created_at, str(w.id)), reverse=True
            )
            if w.owner_id == owner
            and not w.is_deleted
            and any(node.credential_id == credential_id for node in w.definition.nodes)
        ]

    async def set_active(self, workflow_id: WorkflowId, active: bool) -> None:
        current = self._current(workflow_id)
        if current is not None and not current.is_deleted:
            # Not a new version, and no version check: the last switch wins.
            changes = {
                f"workflow/{workflow_id}": _dump_workflow(
                    dataclasses.replace(current, active=active)
                )
            }
            self._staged.update(changes)
            self._uow.stage(lambda: self._apply_active(workflow_id, active))

    def _apply_active(self, workflow_id: WorkflowId, active: bool) -> None:
        text = self._documents.get(f"workflow/{workflow_id}")
        if text is not None:
            switched = dataclasses.replace(_load_workflow(text), active=active)
            self._documents[f"workflow/{workflow_id}"] = _dump_workflow(switched)

    async def count(self, owner: UserId, up_to: int) -> int:
        live = [w for w in self._workflows() if w.owner_id == owner and not w.is_deleted]
        return min(len(live), up_to)

    async def prune_versions(self, workflow: Workflow, keep: int) -> int:
        ran = self._ran_versions(workflow.id)
        prefix = f"version/{workflow.id}/"
        numbers = {
            key: int(key.removeprefix(prefix)) for key in self._keys() if key.startswith(prefix)
        }
        old = [k for k, n in numbers.items() if n <= workflow.version - keep and n not in ran]

        def apply() -> None:
            for key in old:
                self._documents.pop(key, None)

        for key in old:
            self._staged.pop(key, None)
        self._uow.stage(apply)
        return len(old)

    def _keys(self) -> set[str]:
        return {*self._documents, *self._staged}

    def _read(self, key: str) -> str | None:
        return self._staged[key] if key in self._staged else self._documents.get(key)

    def _matching(self, prefix: str) -> list[str]:
        return [
            text for key in self._keys() if key.startswith(prefix) and (text := self._read(key))
        ]

    def _current(self, workflow_id: WorkflowId) -> Workflow | None:
        text = self._read(f"workflow/{workflow_id}")
        return None if text is None else _load_workflow(text)

    def _workflows(self) -> list[Workflow]:
        return [_load_workflow(text) for text in self._matching("workflow/")]

    def _expect(self, workflow_id: WorkflowId, expected_version: int) -> Workflow:
        current = self._current(workflow_id)
        if current is None or current.is_deleted or current.version != expected_version:
            raise ConcurrentUpdateError(workflow_id)
        return current

    def _write(
        self, workflow: Workflow, *, expected_version: int | None, with_version: bool
    ) -> None:
        key = f"workflow/{workflow.id}"
        changes = {key: _dump_workflow(workflow)}
        if with_version:
            version_key = f"version/{workflow.id}/{workflow.version}"
            changes[version_key] = _dump_version(workflow.current_version())
        # Only this unit of work's first change of the workflow is checked against what is
        # committed: its later changes build on its own.
        check = None if key in self._staged else self._committed_is(key, expected_version)
        self._staged.update(changes)
        self._uow.stage(lambda: self._documents.update(changes), check)

    def _committed_is(self, key: str, expected_version: int | None) -> Callable[[], None]:
        def check() -> None:
            text = self._documents.get(key)
            stored = None if text is None else json.loads(text)
            if expected_version is None:  # an add: nothing may be stored under its id
                unchanged = stored is None
            else:
                unchanged = (
                    stored is not None
                    and stored["deleted_at"] is None
                    and stored["version"] == expected_version
                )
            if not unchanged:
                raise ConflictError("The workflow was changed by another request; try again.")

        return check


def _dump_workflow(workflow: Workflow) -> str:
    return json.dumps(
        {
            "id": str(workflow.id),
            "owner_id": workflow.owner_id,
            "name": workflow.name,
            "description": workflow.description,
            "tags": list(workflow.tags),
            "definition": workflow.definition.to_json(),
            "version": workflow.version,
            "created_at": workflow.created_at.isoformat(),
            "updated_at": workflow.updated_at.isoformat(),
            "deleted_at": workflow.deleted_at.isoformat() if workflow.deleted_at else None,
            "active": workflow.active,
        }
    )


def _load_workflow(text: str) -> Workflow:
    raw = json.loads(text)
    return Workflow(
        id=WorkflowId(uuid.UUID(raw["id"])),
        owner_id=UserId(raw["owner_id"]),
        name=raw["name"],
        description=raw["description"],
        tags=tuple(raw["tags"]),
        definition=_load_definition(raw["definition"]),
        version=raw["version"],
        created_at=datetime.fromisoformat(raw["created_at"]),
        updated_at=datetime.fromisoformat(raw["updated_at"]),
        deleted_at=datetime.fromisoformat(raw["deleted_at"]) if raw["deleted_at"] else None,
        active=raw["active"],
    )


def _dump_version(version: WorkflowVersion) -> str:
    return json.dumps(
        {
            "workflow_id": str(version.workflow_id),
            "version": version.version,
            "name": version.name,
            "definition": version.definition.to_json(),
            "created_at": version.created_at.isoformat(),
        }
    )


def _load_version(text: str) -> WorkflowVersion:
    raw = json.loads(text)
    return WorkflowVersion(
        workflow_id=WorkflowId(uuid.UUID(raw["workflow_id"])),
        version=raw["version"],
        name=raw["name"],
        definition=_load_definition(raw["definition"]),
        created_at=datetime.fromisoformat(raw["created_at"]),
    )


def _load_definition(raw: dict[str, Any]) -> Definition:
    """The inverse of `Definition.to_json()`."""
    nodes = tuple(
        Node(
            node["id"],
            node["type"],
            node["parameters"],
            uuid.UUID(node["credential_id"]) if "credential_id" in node else None,
            Position(node["position"]["x"], node["position"]["y"]) if "position" in node else None,
            RetryPolicy(**node["retry"]) if "retry" in node else None,
            OnError(node.get("on_error", "fail")),
        )
        for node in raw["nodes"]
    )
    edges = tuple(Edge(e["source"], e["target"], e.get("source_output")) for e in raw["edges"])
    return Definition(nodes, edges)


class DocumentStorage:
    """A `Storage`: the in-memory adapters, with the workflows kept in `documents` instead."""

    def __init__(self) -> None:
        self.documents: dict[str, str] = {}
        self._memory = MemoryStorage()

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Adapters]:
        async with self._memory() as adapters:
            assert isinstance(adapters.uow, MemoryUnitOfWork)
            workflows = DocumentWorkflowRepository(self.documents, adapters.uow, self._ran)
            yield dataclasses.replace(adapters, workflows=workflows)

    def _ran(self, workflow_id: WorkflowId) -> set[int]:
        """The executions are the memory adapters': ask their store."""
        executions = self._memory.store.executions.values()
        return {e.workflow_version for e in executions if e.workflow_id == workflow_id}


def contract_storage() -> DocumentStorage:
    """The contract suite's hook (FLOWBUILDER_CONTRACT_STORAGE): a new, empty storage per test."""
    return DocumentStorage()


async def main() -> None:
    storage = DocumentStorage()
    flow = FlowBuilder(storage)
    bob = Principal(UserId("user_bob"))
    definition = {"nodes": [{"id": "start", "type": "trigger.manual"}], "edges": []}

    async with flow.use_cases() as use:
        workflow = await use.create_workflow(bob, WorkflowInput("Nightly", definition=definition))
        renamed = WorkflowInput("Nightly report", definition=definition)
        await use.replace_workflow(bob, ReplaceWorkflowCommand(workflow.id, renamed, if_match=[1]))
        history = await use.list_workflow_versions(bob, ListVersionsQuery(workflow.id))

    print(f"versions: {[(v.version, v.name) for v in history.items]}")
    print(f"documents: {sorted(key.split('/')[0] for key in storage.documents)}")


if __name__ == "__main__":
    asyncio.run(main())
