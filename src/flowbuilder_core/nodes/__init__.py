"""The node catalogue: what node types exist and what parameters they take.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
