"""The shared kernel: errors, ids, clock, identity, unit of work, pagination.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
