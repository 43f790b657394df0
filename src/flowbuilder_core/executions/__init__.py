"""Executions: runs of a workflow version, their steps, and the engine that runs the graph."""
