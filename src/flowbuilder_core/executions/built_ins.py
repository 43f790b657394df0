"""The work of the built-in node types that join or report (the engine runs them itself)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flowbuilder_core.executions.model import Json


def merge(
    parameters: Mapping[str, Json], sources: Sequence[str], outputs: Mapping[str, Json]
) -> Json:
    """`flow.merge`: `{<source id>: output}` (mode object), or the sources' outputs
    concatenated in edge order (mode append; an output that is not an array is one item)."""
    if parameters.get("mode", "object") == "object":
        return {source: outputs.get(source) for source in sources}
    joined: list[Json] = []
    for source in sources:
        output = outputs.get(source)
        if isinstance(output, list):
            joined.extend(output)
        else:
            joined.append(output)
    return joined
