"""Credentials: the secrets that workflow nodes use. Values go in and never come out of the API.

Internal: a library user imports the public names from `flowbuilder_core` itself
(docs/library.md).
"""
