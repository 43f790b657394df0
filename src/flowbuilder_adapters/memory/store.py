"""The shared state of the in-memory adapters: what a database would hold."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowbuilder_core.credentials.model import Credential, CredentialId
from flowbuilder_core.workflows.model import Workflow, WorkflowId, WorkflowVersion


@dataclass
class MemoryStore:
    """Committed state only; units of work stage their changes until commit."""

    workflows: dict[WorkflowId, Workflow] = field(default_factory=dict)
    versions: dict[tuple[WorkflowId, int], WorkflowVersion] = field(default_factory=dict)
    credentials: dict[CredentialId, Credential] = field(default_factory=dict)
