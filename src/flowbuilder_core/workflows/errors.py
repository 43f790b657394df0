"""Errors of the workflows context."""

from __future__ import annotations

from flowbuilder_core.shared.errors import InvalidInputError, NotFoundError, PreconditionFailedError


class WorkflowNotFoundError(NotFoundError):
    """No workflow with this id exists for the caller (it may be another user's, or deleted)."""

    code = "workflow-not-found"

    def __init__(self) -> None:
        super().__init__("No workflow with this id exists.")


class WorkflowVersionNotFoundError(NotFoundError):
    """The workflow exists for the caller but has no such version."""

    code = "workflow-version-not-found"

    def __init__(self) -> None:
        super().__init__("The workflow has no such version.")


class StaleWorkflowVersionError(PreconditionFailedError):
    """The caller edited an older version than the current one (`If-Match` or body `version`)."""

    code = "stale-workflow-version"

    def __init__(self, current: int) -> None:
        super().__init__(f"The workflow has changed; its current version is {current}.")
        self.current = current


class ConcurrentUpdateError(Exception):
    """Raised by a repository when the stored version is not the expected one.

    Not a FlowbuilderError: the use case decides whether it is the caller's precondition that
    failed, or a race it can resolve by reading again.
    """


class NotRunnableError(InvalidInputError):
    """The workflow's current definition cannot run; `errors` lists every problem."""

    code = "workflow-not-runnable"
