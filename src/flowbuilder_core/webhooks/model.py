"""A workflow's webhook, the settings its `trigger.webhook` node gives it, the requests it
receives and the answers it gives."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from flowbuilder_core.credentials.model import CredentialId, SecretBinding, SecretRef
from flowbuilder_core.executions.model import ExecutionId, Json
from flowbuilder_core.nodes import webhooks as rules
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.model import Definition, WorkflowId

HOOK_ID_BYTES = 24
"""192 random bits: the hook id is what makes a hook's URL unguessable."""
SECRET_BYTES = 32


def new_hook_id() -> str:
    """A random, URL-safe hook id (32 characters of A-Z a-z 0-9 - _)."""
    return secrets.token_urlsafe(HOOK_ID_BYTES)


def new_secret() -> str:
    """A random signing secret (43 characters of A-Z a-z 0-9 - _)."""
    return secrets.token_urlsafe(SECRET_BYTES)


class AuthMode(StrEnum):
    SIGNATURE = "signature"
    TOKEN = "token"  # noqa: S105 - the name of a mode, not a secret
    GITHUB = "github"
    NONE = "none"


class RespondMode(StrEnum):
    IMMEDIATELY = "immediately"
    WHEN_FINISHED = "when_finished"


@dataclass(frozen=True, slots=True)
class WebhookLimits:
    """How long a `when_finished` request waits for its run (`WEBHOOK_WAIT_S`), and each hook's
    token bucket (`WEBHOOK_RATE_PER_SECOND`, `WEBHOOK_RATE_BURST`)."""

    wait_s: float = 30.0
    rate_per_second: float = 50.0
    burst: int = 100


@dataclass(frozen=True, slots=True)
class WebhookTrigger:
    """The parameters of a definition's `trigger.webhook` node, defaults applied."""

    methods: tuple[str, ...] = rules.DEFAULT_METHODS
    auth: AuthMode = AuthMode.SIGNATURE
    respond: RespondMode = RespondMode.IMMEDIATELY
    dedupe_header: str | None = None

    @classmethod
    def of(cls, definition: Definition) -> WebhookTrigger | None:
        """The settings of the definition's webhook trigger; None when it has none. The
        definition is well formed (validated when saved), so its values are the schema's."""
        for node in definition.nodes:
            if node.type == rules.TRIGGER_TYPE:
                parameters: Mapping[str, Any] = node.parameters
                header = parameters.get("dedupe_header")
                return cls(
                    methods=tuple(parameters.get("methods", rules.DEFAULT_METHODS)),
                    auth=AuthMode(parameters.get("auth", AuthMode.SIGNATURE)),
                    respond=RespondMode(parameters.get("respond", RespondMode.IMMEDIATELY)),
                    dedupe_header=header.lower() if isinstance(header, str) else None,
                )
        return None


def respond_nodes(definition: Definition) -> frozenset[str]:
    """The ids of the definition's `webhook.respond` nodes."""
    return frozenset(node.id for node in definition.nodes if node.type == rules.RESPOND_TYPE)


@dataclass(kw_only=True, slots=True)
class Webhook:
    """The one webhook of a workflow: its hook id (stable across versions) and where its
    signing secret is kept (None until one is made). Never holds the secret itself."""

    workflow_id: WorkflowId
    owner_id: UserId
    hook_id: str
    secret_ref: SecretRef | None = None
    created_at: datetime
    secret_set_at: datetime | None = None

    @property
    def binding(self) -> SecretBinding:
        """What the secret store binds the secret to: its owner and its workflow."""
        return SecretBinding(self.owner_id, CredentialId(self.workflow_id))

    @property
    def path(self) -> str:
        return f"/hooks/{self.hook_id}"


@dataclass(frozen=True, slots=True)
class WebhookView:
    """What `GET /api/workflows/{id}/webhook` shows: never the secret."""

    webhook: Webhook
    trigger: WebhookTrigger
    active: bool


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A request to `/hooks/{hook_id}` as it arrived: header names lower-case, in order."""

    hook_id: str
    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Sequence[tuple[str, str]] = field(repr=False)
    body: bytes = field(repr=False)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower-case), or None."""
        return next((value for key, value in self.headers if key == name), None)


class AnswerKind(StrEnum):
    ACCEPTED = "accepted"
    """202 `{"execution_id"}`: the run is requested (or still running after the wait)."""
    RESPONSE = "response"
    """The run's answer: a `webhook.respond` node's, or the last output, as `status`,
    `headers`, `body`."""
    FAILED = "failed"
    """502: the run failed or was cancelled."""


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What a webhook request is answered: recorded as it is, so that a repeated delivery gets
    the same answer again."""

    kind: AnswerKind
    execution_id: ExecutionId
    status: int = 202
    headers: tuple[tuple[str, str], ...] = ()
    body: Json = None

    @classmethod
    def accepted(cls, execution_id: ExecutionId) -> WebhookAnswer:
        return cls(AnswerKind.ACCEPTED, execution_id)

    @classmethod
    def failed(cls, execution_id: ExecutionId) -> WebhookAnswer:
        return cls(AnswerKind.FAILED, execution_id, 502)

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "kind": self.kind.value,
                "execution_id": str(self.execution_id),
                "status": self.status,
                "headers": [list(pair) for pair in self.headers],
                "body": self.body,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> WebhookAnswer:
        raw = json.loads(payload)
        return cls(
            AnswerKind(raw["kind"]),
            ExecutionId(uuid.UUID(raw["execution_id"])),
            int(raw["status"]),
            tuple((str(name), str(value)) for name, value in raw["headers"]),
            raw["body"],
        )


@dataclass(frozen=True, slots=True)
class Awaited:
    """A `when_finished` request's run, to wait for: whose it is, which of its nodes answer,
    and the delivery key whose recorded answer the final one replaces."""

    owner_id: UserId
    execution_id: ExecutionId
    respond_nodes: frozenset[str]
    hook_id: str
    delivery_key: str | None


@dataclass(frozen=True, slots=True)
class Received:
    """How a webhook request was taken: the answer so far (`replayed` when it is the recorded
    answer of an earlier delivery), and, for `when_finished`, the run to wait for."""

    answer: WebhookAnswer
    replayed: bool = False
    awaited: Awaited | None = None
