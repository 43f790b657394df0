"""A workflow repository with a bug the contract suite must catch: `update` leaves the check
of the expected version to the commit, so a stale update is not refused when it is made.

The storage for FLOWBUILDER_CONTRACT_STORAGE=careless_repository:contract_storage, with
examples/ and this folder on PYTHONPATH (test_contract_hook.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from custom_repository import DocumentStorage, DocumentWorkflowRepository

from flowbuilder_adapters.memory import MemoryUnitOfWork
from flowbuilder_core import Adapters, Workflow


class CarelessRepository(DocumentWorkflowRepository):
    async def update(self, workflow: Workflow, *, expected_version: int) -> None:
        self._write(workflow, expected_version=expected_version, with_version=True)


class CarelessStorage(DocumentStorage):
    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[Adapters]:
        async with self._memory() as adapters:
            assert isinstance(adapters.uow, MemoryUnitOfWork)
            workflows = CarelessRepository(self.documents, adapters.uow)
            yield dataclasses.replace(adapters, workflows=workflows)


def contract_storage() -> CarelessStorage:
    return CarelessStorage()
