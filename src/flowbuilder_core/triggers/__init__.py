"""Triggers: what starts a workflow by itself (its schedule), on top of executions.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
