"""Execution queues: Amazon SQS (aioboto3) and an in-process queue for embedded mode and tests."""
