"""Webhooks: workflows started by a third party calling `/hooks/{hook_id}`.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
