"""The alert bus (docs/contracts.md §2): schema, durable log, ZeroMQ publisher and replay server."""
