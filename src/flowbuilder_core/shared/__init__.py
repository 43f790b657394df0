"""The shared kernel: errors, ids, clock, identity, unit of work, pagination."""
