"""Workflows: named graphs of nodes and edges, versioned on every save."""
