"""The HTTP adapter: a Litestar app over the core's use cases, and the `flowbuilder` CLI."""
