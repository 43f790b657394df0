"""Errors of the executions context."""

from __future__ import annotations

from flowbuilder_core.shared.errors import ConflictError, NotFoundError


class ExecutionNotFoundError(NotFoundError):
    """No execution with this id exists for the caller."""

    code = "execution-not-found"

    def __init__(self) -> None:
        super().__init__("No execution with this id exists.")


class IllegalTransitionError(ConflictError):
    """The status machine refuses the move (status only moves forward)."""

    code = "illegal-transition"


class ExecutionFinishedError(IllegalTransitionError):
    """The execution has already finished; it can no longer be cancelled."""

    code = "execution-finished"

    def __init__(self, status: str) -> None:
        super().__init__(f"The execution has already finished ({status}).")


class NodeFailedError(Exception):
    """Raised by a NodeRunner: the node failed with a stable `code` (`http_status`,
    `ssrf_blocked`, `response_too_large`, `timeout`, `invalid_parameters`, ...). `output`, when
    given, is still recorded as the step's output (an HTTP error response, say). The message is
    shown to the workflow's owner and must never hold a secret."""

    def __init__(self, code: str, message: str, output: object = None) -> None:
        super().__init__(message)
        self.code, self.message, self.output = code, message, output


class ExpressionError(Exception):
    """A JMESPath expression that does not parse or cannot be evaluated."""
