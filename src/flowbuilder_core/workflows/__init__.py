"""Workflows: named graphs of nodes and edges, versioned on every save.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
