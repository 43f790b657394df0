"""Adapters: the technology behind the core's ports, and the composition root."""
