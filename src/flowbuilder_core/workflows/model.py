"""The workflow aggregate and the value objects of its definition graph."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NewType

from flowbuilder_core.shared.ids import UserId

WorkflowId = NewType("WorkflowId", uuid.UUID)

JsonObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Position:
    """Where the builder UI draws a node. Meaningless to the engine; kept for the round trip."""

    x: float
    y: float


class OnError(StrEnum):
    """What a node's failure does to the run (docs/API.md §6 "Error policies")."""

    FAIL = "fail"
    """The run fails (the default)."""
    CONTINUE = "continue"
    """The step is failed, the run goes on; later nodes see `{"error": ...}` as its output."""
    BRANCH = "branch"
    """As continue, but only the node's `"source_output": "error"` edges are followed."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Run a failing node up to `max_attempts` times, waiting `backoff_s` doubling up to
    `max_backoff_s` (with jitter) between attempts. Checked by `validation`."""

    max_attempts: int = 3
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return {
            "max_attempts": self.max_attempts,
            "backoff_s": self.backoff_s,
            "max_backoff_s": self.max_backoff_s,
        }


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    type: str
    parameters: JsonObject = field(default_factory=dict)
    credential_id: uuid.UUID | None = None
    position: Position | None = None
    retry: RetryPolicy | None = None
    on_error: OnError = OnError.FAIL

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.credential_id is not None:
            out["credential_id"] = str(self.credential_id)
        out["parameters"] = dict(self.parameters)
        if self.retry is not None:
            out["retry"] = self.retry.to_json()
        if self.on_error is not OnError.FAIL:
            out["on_error"] = self.on_error.value
        if self.position is not None:
            out["position"] = {"x": self.position.x, "y": self.position.y}
        return out


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    source_output: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "target": self.target}
        if self.source_output is not None:
            out["source_output"] = self.source_output
        return out


@dataclass(frozen=True, slots=True)
class Definition:
    """A well-formed graph (see `validation.parse_definition`); not necessarily runnable."""

    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "nodes": [node.to_json() for node in self.nodes],
            "edges": [edge.to_json() for edge in self.edges],
        }


@dataclass(frozen=True, slots=True)
class WorkflowFields:
    """The user-editable fields of a workflow, already checked by `validation`."""

    name: str
    description: str = ""
    tags: tuple[str, ...] = ()
    definition: Definition = Definition()


@dataclass(kw_only=True, slots=True)
class Workflow:
    """A named graph owned by one user. Every save is a new `version`; deletion is soft."""

    id: WorkflowId
    owner_id: UserId
    name: str
    description: str
    tags: tuple[str, ...]
    definition: Definition
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None
    active: bool = False
    """Started by its webhook or schedule only while active; not part of a version."""

    @classmethod
    def create(
        cls, *, id: WorkflowId, owner_id: UserId, fields: WorkflowFields, at: datetime
    ) -> Workflow:
        return cls(
            id=id,
            owner_id=owner_id,
            name=fields.name,
            description=fields.description,
            tags=fields.tags,
            definition=fields.definition,
            version=1,
            created_at=at,
            updated_at=at,
        )

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def replace(self, fields: WorkflowFields, *, at: datetime) -> None:
        self.name = fields.name
        self.description = fields.description
        self.tags = fields.tags
        self.definition = fields.definition
        self.version += 1
        self.updated_at = at

    def summary(self) -> WorkflowSummary:
        return WorkflowSummary(
            id=self.id,
            owner_id=self.owner_id,
            name=self.name,
            description=self.description,
            tags=self.tags,
            version=self.version,
            created_at=self.created_at,
            updated_at=self.updated_at,
            active=self.active,
        )

    def current_version(self) -> WorkflowVersion:
        return WorkflowVersion(
            workflow_id=self.id,
            version=self.version,
            name=self.name,
            definition=self.definition,
            created_at=self.updated_at,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkflowVersion:
    """An immutable snapshot of a workflow's name and definition at one version."""

    workflow_id: WorkflowId
    version: int
    name: str
    definition: Definition
    created_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkflowSummary:
    """A workflow without its definition: what lists show unless asked for definitions."""

    id: WorkflowId
    owner_id: UserId
    name: str
    description: str
    tags: tuple[str, ...]
    version: int
    created_at: datetime
    updated_at: datetime
    active: bool = False
