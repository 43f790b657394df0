"""Test data factories: `make_*(**overrides)` returning raw JSON or core objects."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flowbuilder_core.credentials.model import Credential, CredentialId, SecretRef
from flowbuilder_core.shared.ids import UserId


def make_node(
    node_id: str = "start", node_type: str = "trigger.manual", **overrides: Any
) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "type": node_type, "parameters": {}}
    node.update(overrides)
    return node


def make_http_node(node_id: str = "fetch", **parameters: Any) -> dict[str, Any]:
    return make_node(
        node_id,
        "http.request",
        parameters={"method": "GET", "url": "https://api.example.com/orders", **parameters},
    )


def make_definition(**overrides: Any) -> dict[str, Any]:
    """A runnable two-node definition: a manual trigger feeding an HTTP request."""
    definition: dict[str, Any] = {
        "nodes": [make_node(position={"x": 0, "y": 0}), make_http_node()],
        "edges": [{"source": "start", "target": "fetch"}],
    }
    definition.update(overrides)
    return definition


def make_workflow_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Notify on new order",
        "description": "Posts new orders",
        "tags": ["orders"],
        "definition": make_definition(),
    }
    body.update(overrides)
    return body


def make_credential(**overrides: Any) -> Credential:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": CredentialId(uuid.uuid4()),
        "owner_id": UserId("user_alice"),
        "name": "Orders API",
        "type": "http_bearer",
        "fields": ("token",),
        "secret_ref": SecretRef(f"memory:{uuid.uuid4()}"),
        "created_at": now,
        "updated_at": now,
    }
    values.update(overrides)
    return Credential(**values)
