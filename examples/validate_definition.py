"""Validate a workflow definition and read its problems: no storage, no event loop.

Run it: python examples/validate_definition.py
"""

from flowbuilder_core import Blocks, validate_definition

definition = {
    "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "fetch", "type": "http.request", "parameters": {"method": "GET"}},
        {"id": "check", "type": "logic.if", "parameters": {"condition": "nodes.fetch.ok"}},
        {"id": "done", "type": "data.set", "parameters": {"value": {"seen": True}}},
    ],
    "edges": [
        {"source": "start", "target": "fetch"},
        {"source": "fetch", "target": "check"},
        {"source": "check", "target": "done"},
    ],
}

report = validate_definition(definition)

# `valid`: it may be stored. `runnable`: it may also run. Each problem names its field by
# JSON pointer into the definition, and says whether it blocks saving or only running.
print(f"valid: {report.valid}, runnable: {report.runnable}")
for problem in report.problems:
    when = "save" if problem.blocks is Blocks.SAVE else "run"
    print(f"{problem.field}: {problem.message} (blocks {when})")

broken = validate_definition({"nodes": [{"id": "start", "type": "trigger.cron"}], "edges": []})
print(f"valid: {broken.valid}: {broken.problems[0].field} {broken.problems[0].message}")
