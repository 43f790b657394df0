"""How much a run may build, and for how long its expressions may run (docs/API.md, §4).

A JMESPath value can share references where its JSON cannot: `input | {a: @, b: @}` holds
`input` twice in two pointers, and each further stage doubles the JSON again, so a 300-character
expression names a document of gigabytes in a few hundred bytes of memory. Nothing may
therefore be serialized before it is measured, and measuring must stop as soon as the budget is
spent: `json_size` walks a value counting the compact JSON it would write, every shared
reference each time it appears, and gives up at the first byte over its limit.

The limits (`EngineLimits`):

- every node output is at most `max_node_output_bytes` of compact UTF-8 JSON, and so are the
  values of a node's templates and expressions, all together;
- the run's context (the execution input and every output so far) is at most
  `max_run_context_bytes`;
- a node's expressions and templates, all together, finish within `expression_timeout_s`;
- while it runs, an expression builds at most `max_run_context_bytes` array items, object
  members and string characters, all together (each counts one), so that intermediate values
  (`[@, @][]` doubles a real list at every stage) cannot exhaust memory before the deadline.

Going over a size fails the node with `output_too_large`, over the time with
`expression_timeout`. A `Budget` carries one node's time and build allowance to the evaluator,
which runs in a worker thread (see the engine) and calls `tick()` and `charge()` as it goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Final

from flowbuilder_core.executions.errors import NodeFailedError

MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class EngineLimits:
    """What the engine lets one run build, and its expressions take (settings
    `MAX_NODE_OUTPUT_BYTES`, `MAX_RUN_CONTEXT_BYTES` and `EXPRESSION_TIMEOUT_S`). Not to be
    confused with `model.RunLimits`, how many runs a user may have and for how long."""

    max_node_output_bytes: int = MiB
    max_run_context_bytes: int = 8 * MiB
    expression_timeout_s: float = 2.0
    max_for_each_items: int = 1000
    """The most items one `flow.for_each` runs its workflow for (`MAX_FOR_EACH_ITEMS`)."""

    def __post_init__(self) -> None:
        if self.max_node_output_bytes < 1 or self.max_run_context_bytes < 1:
            raise ValueError("Output and context limits must be positive.")
        if self.max_for_each_items < 1:
            raise ValueError("The for-each item limit must be positive.")
        if not self.expression_timeout_s > 0:
            raise ValueError("The expression timeout must be positive.")


def too_large(message: str) -> NodeFailedError:
    return NodeFailedError("output_too_large", message)


def timed_out(seconds: float) -> NodeFailedError:
    return NodeFailedError(
        "expression_timeout", f"The node's expressions did not finish within {seconds:g} s."
    )


class Budget:
    """What one node's expressions may still spend: time until a deadline, and values built.

    The evaluator calls `tick()` every few thousand steps at most (it raises the node's
    `expression_timeout` once the deadline has passed or the engine gave up on the node with
    `stop()`), and `charge(n)` for each array, object or string of size n it builds (it raises
    `output_too_large` once the allowance is spent); before one step that builds much at once,
    `check_room` or `check_buildable`. All raise NodeFailedError, which an evaluator must let
    through. `stop()` is called from another thread than the others.
    """

    def __init__(
        self,
        *,
        seconds: float,
        build_limit: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self._seconds = seconds
        self._deadline = monotonic() + seconds
        self._build_limit = build_limit
        self._build_left = build_limit
        self._stopped = False

    def tick(self) -> None:
        if self._stopped or self._monotonic() > self._deadline:
            raise timed_out(self._seconds)

    def charge(self, units: int) -> None:
        self._build_left -= units
        if self._build_left < 0:
            raise self._overbuilt()

    def check_room(self, units: int) -> None:
        """Raise `output_too_large` unless `units` more fit in what is left to build: for an
        evaluator about to build that much in one step (it charges it once built)."""
        if units > self._build_left:
            raise self._overbuilt()

    def check_buildable(self, value: object) -> int:
        """The size of `value`'s JSON if it fits in what is left to build, else raise
        `output_too_large`: for an evaluator about to serialize it. Raises TypeError for what
        is not JSON."""
        size = json_size(value, max(self._build_left, 0), self.tick)
        if size is None:
            raise self._overbuilt()
        return size

    def _overbuilt(self) -> NodeFailedError:
        return too_large(
            f"An expression builds more than {self._build_limit} array items, object "
            "members and string characters while it runs."
        )

    def seconds_left(self) -> float:
        return max(0.0, self._deadline - self._monotonic())

    def stop(self) -> None:
        """Make the next `tick()` fail: the engine no longer waits for this evaluation."""
        self._stopped = True


def json_size(value: object, limit: int, tick: Callable[[], None] | None = None) -> int | None:
    """The UTF-8 bytes of `value`'s compact JSON (as `json.dumps(value, ensure_ascii=False,
    separators=(",", ":"))` writes it), or None as soon as they exceed `limit`.

    Iterative, so depth cannot hurt; a shared reference is counted wherever it appears, as JSON
    repeats it; a container's punctuation is counted before its items are looked at, so a long
    list over the limit stops at once. `tick` is called every 1,024 values. Raises TypeError for
    what is not JSON; NaN and infinities are sized as Python writes them (json.dumps then
    refuses them, or writes `NaN`, which the caller decides).
    """
    size = 0
    stack: list[object] = [value]
    pop, push = stack.pop, stack.append
    seen = 0
    while stack:
        item = pop()
        if isinstance(item, str):
            size += _string_size(item)
        elif isinstance(item, dict):
            # Braces, a colon per member and the commas between them; checked at once, which
            # spares sizing the keys of a huge object.
            size += 2 + 2 * len(item) - (1 if item else 0)
            if size > limit:
                return None
            for key, member in item.items():
                size += _key_size(key)
                push(member)
        elif isinstance(item, list | tuple):
            size += 2 + len(item) - (1 if item else 0)
            stack.extend(item)
        elif item is None or item is True:
            size += 4
        elif item is False:
            size += 5
        elif isinstance(item, int):
            size += len(int.__repr__(item))
        elif isinstance(item, float):
            size += len(float.__repr__(item))
        else:
            raise TypeError(f"A value of type {type(item).__name__} is not JSON.")
        if size > limit:
            return None
        seen += 1
        if tick is not None and not seen & 1023:
            tick()
    return size


def _string_size(text: str) -> int:
    """With its quotes and escapes; a lone surrogate (json.loads lets them through) is 3."""
    encoded = encode_basestring(text)
    return len(encoded) if encoded.isascii() else len(encoded.encode("utf-8", "surrogatepass"))


def _key_size(key: object) -> int:
    """json.dumps writes a few scalar keys as strings; anything else is not JSON."""
    if isinstance(key, str):
        return _string_size(key)
    if key is None or key is True:
        return 6
    if key is False:
        return 7
    if isinstance(key, int | float):
        return _string_size(repr(key))
    raise TypeError(f"A key of type {type(key).__name__} is not JSON.")
