"""In-memory adapters of every port: for unit tests, HTTP tests and library users.

They keep the contract of the real adapters (the contract suite runs against both): writes are
staged in the unit of work and only visible to others after `commit()`.
"""

from flowbuilder_adapters.memory.credentials import MemoryCredentialDirectory
from flowbuilder_adapters.memory.provider import MemoryProvider
from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_adapters.memory.workflows import MemoryWorkflowRepository

__all__ = [
    "MemoryCredentialDirectory",
    "MemoryProvider",
    "MemoryStore",
    "MemoryUnitOfWork",
    "MemoryWorkflowRepository",
]
