"""Wire formats: msgspec Structs in (unknown fields refused) and out (built from entities)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from flowbuilder_core.credentials.model import Credential, CredentialType
from flowbuilder_core.executions.model import Execution, ExecutionError, StepResult
from flowbuilder_core.nodes.catalogue import NodeType
from flowbuilder_core.workflows.model import (
    Definition,
    OnError,
    Workflow,
    WorkflowSummary,
    WorkflowVersion,
)
from flowbuilder_core.workflows.use_cases import WorkflowInput
from flowbuilder_core.workflows.validation import ValidationReport

T = TypeVar("T")

Timestamp = Annotated[
    str, Meta(description="RFC 3339, UTC", examples=["2026-11-25T19:07:31.123456Z"])
]


def timestamp(value: datetime) -> str:
    return value.isoformat(timespec="microseconds").replace("+00:00", "Z")


class _In(Struct, forbid_unknown_fields=True):
    """Request bodies: an unknown field is a 422, never silently dropped."""


class WorkflowCreateIn(_In):
    name: str
    description: str = ""
    tags: list[str] = msgspec.field(default_factory=list)
    definition: dict[str, Any] | None = msgspec.field(
        default=None,
    )

    def to_input(self) -> WorkflowInput:
        return WorkflowInput(self.name, self.description, self.tags, self.definition)


class WorkflowReplaceIn(WorkflowCreateIn):
    """A full replace. The server-owned fields that GET returns may come back and are ignored,
    except `version`: one other than the current is a 412, like a stale If-Match. `active` is
    switched by activate and deactivate only."""

    id: str | None = None
    version: int | None = None
    created_at: str | None = None
    updated_at: str | None = None
    active: bool | None = None


class ValidateIn(_In):
    definition: dict[str, Any] | None = None


class PositionOut(Struct):
    x: float
    y: float


class RetryOut(Struct):
    max_attempts: int
    backoff_s: float
    max_backoff_s: float


class NodeOut(Struct, omit_defaults=True):
    id: str
    type: str
    parameters: dict[str, Any]
    credential_id: str | UnsetType = UNSET
    retry: RetryOut | UnsetType = UNSET
    on_error: str | UnsetType = UNSET
    position: PositionOut | UnsetType = UNSET


class EdgeOut(Struct, omit_defaults=True):
    source: str
    target: str
    source_output: str | UnsetType = UNSET


class DefinitionOut(Struct):
    nodes: list[NodeOut]
    edges: list[EdgeOut]

    @classmethod
    def of(cls, definition: Definition) -> DefinitionOut:
        return cls(
            nodes=[
                NodeOut(
                    id=n.id,
                    type=n.type,
                    parameters=dict(n.parameters),
                    credential_id=UNSET if n.credential_id is None else str(n.credential_id),
                    retry=UNSET
                    if n.retry is None
                    else RetryOut(n.retry.max_attempts, n.retry.backoff_s, n.retry.max_backoff_s),
                    on_error=UNSET if n.on_error is OnError.FAIL else n.on_error.value,
                    position=UNSET
                    if n.position is None
                    else PositionOut(n.position.x, n.position.y),
                )
                for n in definition.nodes
            ],
            edges=[
                EdgeOut(e.source, e.target, UNSET if e.source_output is None else e.source_output)
                for e in definition.edges
            ],
        )


class WorkflowOut(Struct, omit_defaults=True):
    id: str
    name: str
    description: str
    tags: list[str]
    version: int
    created_at: Timestamp
    updated_at: Timestamp
    active: bool
    definition: DefinitionOut | UnsetType = UNSET

    @classmethod
    def of(cls, workflow: Workflow | WorkflowSummary) -> WorkflowOut:
        """With the definition for a workflow; without it for a summary (list items)."""
        return cls(
            id=str(workflow.id),
            name=workflow.name,
            description=workflow.description,
            tags=list(workflow.tags),
            version=workflow.version,
            created_at=timestamp(workflow.created_at),
            updated_at=timestamp(workflow.updated_at),
            active=workflow.active,
            definition=(
                DefinitionOut.of(workflow.definition) if isinstance(workflow, Workflow) else UNSET
            ),
        )


class WorkflowVersionOut(Struct):
    version: int
    name: str
    definition: DefinitionOut
    created_at: Timestamp

    @classmethod
    def of(cls, version: WorkflowVersion) -> WorkflowVersionOut:
        return cls(
            version=version.version,
            name=version.name,
            definition=DefinitionOut.of(version.definition),
            created_at=timestamp(version.created_at),
        )


class PageOut(Struct, Generic[T]):
    items: list[T]
    next_cursor: str | None


class ValidationProblemOut(Struct):
    field: str
    message: str
    blocks: str


class ValidationOut(Struct):
    valid: bool
    runnable: bool
    errors: list[ValidationProblemOut]

    @classmethod
    def of(cls, report: ValidationReport) -> ValidationOut:
        return cls(
            valid=report.valid,
            runnable=report.runnable,
            errors=[
                ValidationProblemOut(p.field, p.message, p.blocks.value) for p in report.problems
            ],
        )


class NodeTypeOut(Struct):
    type: str
    category: str
    title: str
    parameters_schema: dict[str, Any]
    credential_types: list[str]

    @classmethod
    def of(cls, node_type: NodeType) -> NodeTypeOut:
        return cls(
            type=node_type.type,
            category=node_type.category.value,
            title=node_type.title,
            parameters_schema=_public_schema(node_type.parameters_schema),
            credential_types=list(node_type.credential_types),
        )


class ItemsOut(Struct, Generic[T]):
    items: list[T]


def _public_schema(schema: Any) -> Any:
    """The catalogue's schema without its private `x-` annotations."""
    if isinstance(schema, dict):
        return {k: _public_schema(v) for k, v in schema.items() if not k.startswith("x-")}
    return schema


class CredentialCreateIn(_In):
    name: str
    type: str
    data: dict[str, Any]

    def __repr__(self) -> str:
        return f"CredentialCreateIn(name={self.name!r}, type={self.type!r}, data=<hidden>)"


class CredentialReplaceIn(_In):
    """New `name` and/or `data`. The fields GET returns may come back for a round trip and are
    ignored; `type` never changes."""

    name: str | None = None
    data: dict[str, Any] | None = None
    id: str | None = None
    type: str | None = None
    fields: list[str] | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def __repr__(self) -> str:
        return f"CredentialReplaceIn(name={self.name!r}, data=<hidden>)"


class CredentialOut(Struct):
    id: str
    name: str
    type: str
    fields: list[str]
    created_at: Timestamp
    updated_at: Timestamp

    @classmethod
    def of(cls, credential: Credential) -> CredentialOut:
        return cls(
            id=str(credential.id),
            name=credential.name,
            type=credential.type,
            fields=list(credential.fields),
            created_at=timestamp(credential.created_at),
            updated_at=timestamp(credential.updated_at),
        )


class CredentialTypeOut(Struct):
    type: str
    title: str
    schema: dict[str, Any]

    @classmethod
    def of(cls, credential_type: CredentialType) -> CredentialTypeOut:
        return cls(
            type=credential_type.type,
            title=credential_type.title,
            schema=_public_schema(credential_type.schema),
        )


class ExecuteIn(_In):
    input: dict[str, Any] | None = None


class ExecutionErrorOut(Struct, omit_defaults=True):
    code: str
    message: str
    node_id: str | None = None

    @classmethod
    def of(cls, error: ExecutionError | None) -> ExecutionErrorOut | None:
        return None if error is None else cls(error.code, error.message, error.node_id)


class StepOut(Struct, omit_defaults=True):
    node_id: str
    status: str
    started_at: Timestamp | None
    finished_at: Timestamp | None
    output: Any
    error: ExecutionErrorOut | None
    truncated: bool = False
    attempts: int = 1

    @classmethod
    def of(cls, step: StepResult) -> StepOut:
        return cls(
            node_id=step.node_id,
            status=step.status.value,
            started_at=_maybe(step.started_at),
            finished_at=_maybe(step.finished_at),
            output=step.output,
            error=ExecutionErrorOut.of(step.error),
            truncated=step.truncated,
            attempts=step.attempts,
        )


class ExecutionOut(Struct, omit_defaults=True):
    id: str
    workflow_id: str
    workflow_version: int
    status: str
    trigger: str
    error: ExecutionErrorOut | None
    attempt: int
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None
    parent_execution_id: str | None
    scheduled_for: Timestamp | None
    input: dict[str, Any] | UnsetType = UNSET
    steps: list[StepOut] | UnsetType = UNSET
    retried_trigger: str | UnsetType = UNSET

    @classmethod
    def of(cls, execution: Execution, *, detailed: bool = True) -> ExecutionOut:
        return cls(
            id=str(execution.id),
            workflow_id=str(execution.workflow_id),
            workflow_version=execution.workflow_version,
            status=execution.status.value,
            trigger=execution.trigger,
            error=ExecutionErrorOut.of(execution.error),
            attempt=execution.attempt,
            created_at=timestamp(execution.created_at),
            started_at=_maybe(execution.started_at),
            finished_at=_maybe(execution.finished_at),
            parent_execution_id=(
                None
                if execution.parent_execution_id is None
                else str(execution.parent_execution_id)
            ),
            scheduled_for=_maybe(execution.scheduled_for),
            input=dict(execution.input) if detailed else UNSET,
            steps=[StepOut.of(s) for s in execution.steps] if detailed else UNSET,
            retried_trigger=(
                UNSET if execution.retried_trigger is None else execution.retried_trigger
            ),
        )


def _maybe(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


class WebhookAcceptedOut(Struct):
    execution_id: str
