"""Errors of the credentials context. None of them ever carries a secret value."""

from __future__ import annotations

from collections.abc import Sequence

from flowbuilder_core.shared.errors import ConflictError, FlowbuilderError, NotFoundError


class CredentialNotFoundError(NotFoundError):
    """No credential with this id exists for the caller."""

    code = "credential-not-found"

    def __init__(self) -> None:
        super().__init__("No credential with this id exists.")


class CredentialInUseError(ConflictError):
    """The credential is referenced by the current version of these workflows."""

    code = "credential-in-use"

    def __init__(self, workflows: Sequence[tuple[str, str]]) -> None:
        super().__init__(
            f"The credential is used by {len(workflows)} workflow(s); remove it from them first."
        )
        self.workflows = tuple(workflows)

    def extensions(self) -> dict[str, object]:
        return {"workflows": [{"id": id_, "name": name} for id_, name in self.workflows]}


class SecretNotFoundError(FlowbuilderError):
    """The secret store has nothing under this reference."""

    code = "secret-not-found"

    def __init__(self) -> None:
        super().__init__("The secret does not exist.")


class SecretUnreadableError(FlowbuilderError):
    """The stored secret fails its integrity check: tampered, moved to another credential or
    owner, or encrypted with a key that is no longer configured."""

    code = "secret-unreadable"

    def __init__(self, reason: str = "The secret cannot be decrypted.") -> None:
        super().__init__(reason)
