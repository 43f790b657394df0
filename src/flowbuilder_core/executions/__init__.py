"""Executions: runs of a workflow version, their steps, and the engine that runs the graph.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
