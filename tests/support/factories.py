"""Test data factories: `make_*(**overrides)` returning raw JSON or core objects."""

from __future__ import annotations

from typing import Any


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
