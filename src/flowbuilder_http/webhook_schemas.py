"""The webhook's representations: where a workflow's webhook is and how it is called (never its
secret), and its secret, shown the one time it is made."""

from __future__ import annotations

from msgspec import Struct

from flowbuilder_core.webhooks.model import WebhookView


class WebhookOut(Struct):
    """A workflow's webhook: where it is and how it is called; never its secret."""

    url: str
    methods: list[str]
    auth: str
    respond: str
    dedupe_header: str | None
    secret_set: bool
    active: bool

    @classmethod
    def of(cls, view: WebhookView) -> WebhookOut:
        trigger = view.trigger
        return cls(
            url=view.webhook.path,
            methods=list(trigger.methods),
            auth=trigger.auth.value,
            respond=trigger.respond.value,
            dedupe_header=trigger.dedupe_header,
            secret_set=view.webhook.secret_ref is not None,
            active=view.active,
        )


class WebhookSecretOut(Struct):
    """The new secret, shown this once."""

    secret: str

    def __repr__(self) -> str:
        return "WebhookSecretOut(secret=<hidden>)"
