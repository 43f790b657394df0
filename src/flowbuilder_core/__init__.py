"""FlowBuilder's domain core: workflows, their validation and use cases. Standard library only."""
