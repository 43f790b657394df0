"""Workflow rows <-> entities: the explicit mapping of the workflow repository over SQL."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row

from flowbuilder_adapters.sql.tables import workflows
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import (
    Definition,
    Edge,
    Node,
    OnError,
    Position,
    RetryPolicy,
    Workflow,
    WorkflowId,
    WorkflowSummary,
    WorkflowVersion,
)

# ---------------------------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------------------------


def definition_to_json(definition: Definition) -> dict[str, Any]:
    return definition.to_json()


def definition_from_json(raw: Mapping[str, Any]) -> Definition:
    """Rebuild a stored definition. It was validated when saved, so it is read back as it is,
    not validated again: a stored workflow stays readable if the save-time rules tighten later."""
    return Definition(
        nodes=tuple(_node_from_json(node) for node in raw.get("nodes", ())),
        edges=tuple(
            Edge(edge["source"], edge["target"], edge.get("source_output"))
            for edge in raw.get("edges", ())
        ),
    )


def _node_from_json(raw: Mapping[str, Any]) -> Node:
    credential_id = raw.get("credential_id")
    position = raw.get("position")
    retry = raw.get("retry")
    return Node(
        id=raw["id"],
        type=raw["type"],
        parameters=raw.get("parameters", {}),
        credential_id=None if credential_id is None else uuid.UUID(credential_id),
        position=None if position is None else Position(position["x"], position["y"]),
        retry=None if retry is None else RetryPolicy(**retry),
        on_error=OnError(raw.get("on_error", OnError.FAIL.value)),
    )


def workflow_to_row(workflow: Workflow) -> dict[str, Any]:
    return {
        "id": workflow.id,
        "owner_id": workflow.owner_id,
        "name": workflow.name,
        "description": workflow.description,
        "tags": list(workflow.tags),
        "definition": definition_to_json(workflow.definition),
        "version": workflow.version,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        "deleted_at": workflow.deleted_at,
        "active": workflow.active,
    }


def workflow_from_row(row: Row[Any]) -> Workflow:
    return Workflow(
        id=WorkflowId(row.id),
        owner_id=UserId(row.owner_id),
        name=row.name,
        description=row.description,
        tags=tuple(row.tags),
        definition=definition_from_json(row.definition),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
        active=row.active,
    )


SUMMARY_COLUMNS = [c for c in workflows.c if c.name != "definition"]


def summary_from_row(row: Row[Any]) -> WorkflowSummary:
    return WorkflowSummary(
        id=WorkflowId(row.id),
        owner_id=UserId(row.owner_id),
        name=row.name,
        description=row.description,
        tags=tuple(row.tags),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        active=row.active,
    )


def version_to_row(version: WorkflowVersion) -> dict[str, Any]:
    return {
        "workflow_id": version.workflow_id,
        "version": version.version,
        "name": version.name,
        "definition": definition_to_json(version.definition),
        "created_at": version.created_at,
    }


def version_from_row(row: Row[Any]) -> WorkflowVersion:
    return WorkflowVersion(
        workflow_id=WorkflowId(row.workflow_id),
        version=row.version,
        name=row.name,
        definition=definition_from_json(row.definition),
        created_at=row.created_at,
    )
