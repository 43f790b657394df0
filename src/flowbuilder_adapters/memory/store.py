"""The shared state of the in-memory adapters: what a database would hold."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flowbuilder_core.credentials.model import Credential, CredentialId
from flowbuilder_core.executions.model import Execution, ExecutionId, ExecutionRequested
from flowbuilder_core.executions.rate import Bucket
from flowbuilder_core.shared.idempotency import RecordedResult
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.webhooks.model import Webhook
from flowbuilder_core.workflows.model import Workflow, WorkflowId, WorkflowVersion
from flowbuilder_core.workflows.schedules import ScheduledWorkflow


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    """A claimed key, and the result once its request completed."""

    fingerprint: str
    claimed_at: datetime
    result: RecordedResult | None = None


@dataclass
class MemoryStore:
    """Committed state only; units of work stage their changes until commit."""

    workflows: dict[WorkflowId, Workflow] = field(default_factory=dict)
    versions: dict[tuple[WorkflowId, int], WorkflowVersion] = field(default_factory=dict)
    credentials: dict[CredentialId, Credential] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], IdempotencyEntry] = field(default_factory=dict)
    executions: dict[ExecutionId, Execution] = field(default_factory=dict)
    outbox: list[ExecutionRequested] = field(default_factory=list)
    buckets: dict[UserId, Bucket] = field(default_factory=dict)
    parked: dict[ExecutionId, datetime] = field(default_factory=dict)
    """Queued executions waiting for a free slot of their owner, with when they were parked."""
    webhooks: dict[WorkflowId, Webhook] = field(default_factory=dict)
    schedules: dict[WorkflowId, ScheduledWorkflow] = field(default_factory=dict)
    """The schedule book: active scheduled workflows and when each is due next."""
