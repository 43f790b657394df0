"""Route handlers: thin translations between HTTP and use cases."""
