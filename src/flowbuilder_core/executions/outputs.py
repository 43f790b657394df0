"""A node's output as the engine keeps it: measured against the room the run has left,
detached from whatever the runner holds, and made storable (truncated past MAX_OUTPUT_BYTES,
NUL replaced), without holding the event loop for large values.

How the event loop is kept free: everything whose cost grows with the data runs in a worker
thread (`asyncio.to_thread`), never on the loop: resolving a node's templates and evaluating
its expression, measuring, serializing and truncating its output. (Two things stay on the
loop, because a thread would cost more than they do: an output of at most 16 KiB, which a
walk that stops at 16 KiB tells, and the parameters of a node without any template, a copy
of its definition.) The evaluator gets the node's `Budget` and checks it as it goes, so a
runaway expression stops itself at the deadline (a thread cannot be killed); since its steps
are Python code, the thread gives the GIL up every few milliseconds meanwhile, and the loop
(other runs, the API's probes in embedded mode) keeps going. Large outputs are serialized by
Python code for the same reason (see `settle`). Should an evaluator ignore its budget, the
engine stops waiting for it at twice the timeout and fails the node all the same.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Final

from flowbuilder_core.executions.bounds import EngineLimits, json_size
from flowbuilder_core.executions.model import MAX_OUTPUT_BYTES, Json

_SETTLE_HERE_BYTES: Final = 16 * 1024
"""An output this small is measured and serialized on the event loop (well under 1 ms)."""
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_TRUNCATED = "truncated_json"
# A NUL written by json.dumps, `\u0000` in the text, unless that backslash is itself the
# second half of an escaped backslash (`\\u0000` is the text "\u0000", no NUL at all).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True, slots=True)
class Room:
    """What a node may still add to the run: `bytes` of JSON, bound by the node's own limit or,
    when less than that is left (`by_context`), by the run's context limit."""

    bytes: int
    by_context: bool
    context_bytes: int

    @classmethod
    def left(cls, limits: EngineLimits, used: int) -> Room:
        left = limits.max_run_context_bytes - used
        by_context = left < limits.max_node_output_bytes
        bytes_ = left if by_context else limits.max_node_output_bytes
        return cls(max(bytes_, 0), by_context, limits.max_run_context_bytes)

    @property
    def output_message(self) -> str:
        return self._message("The node's output is")

    @property
    def values_message(self) -> str:
        return self._message("The values of the node's expressions are")

    def _message(self, what: str) -> str:
        if self.by_context:
            return f"The run's outputs would be over {self.context_bytes} bytes of JSON."
        return f"{what} over {self.bytes} bytes of JSON."


@dataclass(frozen=True, slots=True)
class Settled:
    """An output measured, detached (a JSON round trip) and made storable."""

    output: Json
    size: int
    stored: Json
    truncated: bool


def dumps(value: Json) -> str:
    """Compact JSON; raises TypeError or ValueError for what is not JSON (NaN included)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def printable(message: str) -> str:
    """A message as recorded: no database keeps a NUL in text."""
    return message.replace("\x00", "\ufffd")


async def settle_beside_the_loop(output: Json, room: Room) -> Settled | None:
    """`settle` in a worker thread, but for an output small enough (`_SETTLE_HERE_BYTES`)
    that settling it costs less than the thread would: that takes a bounded walk to know."""
    if json_size(output, min(room.bytes, _SETTLE_HERE_BYTES)) is not None:
        return settle(output, room, small=True)
    return await asyncio.to_thread(settle, output, room)


def settle(output: Json, room: Room, *, small: bool = False) -> Settled | None:
    """`output` measured, detached and made storable; None when it is larger than `room`.
    Raises TypeError or ValueError for what is not JSON.

    The C encoder and decoder hold the GIL for as long as they work (over 100 ms for a
    megabyte of small items), so only a `small` output goes through them. Any other goes
    through the standard library's own Python encoder, which writes exactly what json.dumps
    writes, piece by piece, and stops at the room's size, and is detached by a Python walk:
    slower, but the event loop's thread gets the GIL every few milliseconds meanwhile."""
    if small:
        text = dumps(output)
        # The round trip through JSON gives later nodes plain dicts and lists, detached from
        # whatever the runner keeps.
        plain = json.loads(text)
    else:
        pieces = compact_json(output, room.bytes)
        if pieces is None:
            return None
        text, plain = pieces, detached(output)
    size = utf8_size(text)
    if size > room.bytes:
        return None
    stored, truncated = storable(text, size)
    return Settled(plain, size, stored, truncated)


def compact_json(value: Json, limit: int) -> str | None:
    """`dumps(value)`, or None once it is over `limit` characters (and so over as many bytes)."""
    pieces: list[str] = []
    length = 0
    for piece in _ENCODER.iterencode(value):
        length += len(piece)
        if length > limit:
            return None
        pieces.append(piece)
    return "".join(pieces)


def detached(value: Json) -> Json:
    """What `json.loads(dumps(value))` answers (plain dicts and lists, keys as JSON writes
    them, in their order), copied by an iterative walk. `value` has been serialized already,
    so it is JSON. Only containers wait on the stack: a tuple for every item would be garbage
    for the collector, whose full passes hold the GIL for as long as they take."""
    if not isinstance(value, dict | list | tuple):
        return _scalar(value)
    root: list[Json] = [None]
    pending: list[tuple[Json, Any, int | str]] = [(value, root, 0)]
    while pending:
        item, parent, key = pending.pop()
        copy: Any
        if isinstance(item, dict):
            copy = {}
            for name, member in item.items():
                json_name = _json_key(name)
                if isinstance(member, dict | list | tuple):
                    copy[json_name] = None
                    pending.append((member, copy, json_name))
                else:
                    copy[json_name] = _scalar(member)
        else:
            copy = []
            for index, member in enumerate(item):
                if isinstance(member, dict | list | tuple):
                    copy.append(None)
                    pending.append((member, copy, index))
                else:
                    copy.append(_scalar(member))
        parent[key] = copy
    return root[0]


def _scalar(value: Json) -> Json:
    """A JSON scalar as json.loads would give it back (a subclass becomes its base type)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    return float(value)


def _json_key(key: object) -> str:
    """A key as json.dumps writes it (it accepts a few scalars besides strings)."""
    if isinstance(key, str):
        return str(key)
    return dumps(key)


def storable(text: str, size: int) -> tuple[Json, bool]:
    """The output as recorded, and whether it was truncated (see the module docstring)."""
    if size <= MAX_OUTPUT_BYTES:
        if "\\u0000" in text:
            text = _NUL_ESCAPE.sub(r"\1\\ufffd", text)
        return json.loads(text), False
    # The longest prefix whose stored form fits: a binary search, as escaping makes the
    # stored size of a prefix grow unevenly. Slicing by code point never splits a character.
    # (The prefix is JSON text, where a NUL is the six characters `\u0000`: storable.)
    overhead = utf8_size(dumps({_TRUNCATED: ""}))
    low, high = 0, min(len(text), MAX_OUTPUT_BYTES)
    while low < high:
        middle = (low + high + 1) // 2
        if overhead + utf8_size(dumps(text[:middle])) - 2 <= MAX_OUTPUT_BYTES:
            low = middle
        else:
            high = middle - 1
    return {_TRUNCATED: text[:low]}, True


def utf8_size(text: str) -> int:
    """UTF-8 bytes; a lone surrogate (which json.loads lets through) counts, never raises."""
    return len(text.encode("utf-8", "surrogatepass"))
