"""In-memory adapters of every port: for unit tests, HTTP tests and library users.

They keep the contract of the real adapters (the contract suite runs against both): writes are
staged in the unit of work and only visible to others after `commit()`. `MemoryStorage` puts
them together as the core's `Storage`, for `flowbuilder_core.FlowBuilder`; the names exported
here are public, the modules internal (docs/library.md).
"""

from flowbuilder_adapters.memory.credentials import (
    MemoryCredentialDirectory,
    MemoryCredentialRepository,
)
from flowbuilder_adapters.memory.executions import (
    MemoryExecutionRepository,
    MemoryOutbox,
    MemoryRateLimiter,
)
from flowbuilder_adapters.memory.runs import MemoryRunTransactions
from flowbuilder_adapters.memory.secrets import MemorySecretStore
from flowbuilder_adapters.memory.storage import MemoryStorage
from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_adapters.memory.workflows import MemoryWorkflowRepository

__all__ = [
    "MemoryCredentialDirectory",
    "MemoryCredentialRepository",
    "MemoryExecutionRepository",
    "MemoryOutbox",
    "MemoryRateLimiter",
    "MemoryRunTransactions",
    "MemorySecretStore",
    "MemoryStorage",
    "MemoryStore",
    "MemoryUnitOfWork",
    "MemoryWorkflowRepository",
]
