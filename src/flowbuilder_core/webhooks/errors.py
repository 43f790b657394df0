"""Errors of the webhooks context."""

from __future__ import annotations

from flowbuilder_core.shared.errors import ConflictError, NotFoundError, UnauthenticatedError


class HookNotFoundError(NotFoundError):
    """No hook answers at this URL: unknown, its workflow deleted or inactive, its current
    definition without a webhook trigger, or the method not one it takes. One answer for
    every reason, and the same as an unknown path's, so a URL reveals nothing."""

    code = "not-found"

    def __init__(self) -> None:
        super().__init__("No such resource.")


class WebhookNotFoundError(NotFoundError):
    """The caller's workflow has no webhook: its current definition has no trigger.webhook."""

    code = "webhook-not-found"

    def __init__(self) -> None:
        super().__init__("The workflow's current definition has no trigger.webhook node.")


class WebhookUnauthenticatedError(UnauthenticatedError):
    """The request does not prove it comes from the secret's holder. The detail (which check
    failed) is for the log only; the caller's answer is the same whatever the reason."""

    code = "webhook-unauthenticated"


class DeliveryInFlightError(ConflictError):
    """The first delivery with this key (Idempotency-Key or the hook's dedupe header) is
    still being taken."""

    code = "webhook-delivery-in-flight"

    def __init__(self) -> None:
        super().__init__("A delivery with this key is still being taken; retry later.")
