"""The node catalogue: what node types exist and what parameters they take."""
