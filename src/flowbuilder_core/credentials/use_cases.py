"""Use cases of the credentials context. Values go in through `CreateCredential` and
`ReplaceCredential` and come out only through `ResolveCredential`, which no HTTP route reaches."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from flowbuilder_core.credentials.errors import CredentialInUseError, CredentialNotFoundError
from flowbuilder_core.credentials.model import (
    Credential,
    CredentialId,
    SecretBinding,
    SecretData,
    SecretRef,
)
from flowbuilder_core.credentials.ports import CredentialRepository, SecretHolder, SecretStore
from flowbuilder_core.credentials.validation import check_data, check_name, check_type, raise_if
from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import FieldError, Location
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId, new_uuid
from flowbuilder_core.shared.ownership import owned_by
from flowbuilder_core.shared.pagination import (
    Page,
    PageRequest,
    Position,
    check_limit,
    decode_time_id_cursor,
    page_of,
    time_id_position,
)
from flowbuilder_core.shared.quotas import Quotas, WriteRateLimiter, refuse_past, take_write
from flowbuilder_core.shared.uow import UnitOfWork
from flowbuilder_core.workflows.ports import WorkflowRepository

_log = logging.getLogger(__name__)

SWEEP_GRACE = timedelta(hours=1)
"""Secrets younger than this are never swept: their credential row may still be committing."""


@dataclass(frozen=True, slots=True)
class CreateCredentialCommand:
    name: str
    type: str
    data: Mapping[str, object] = field(repr=False)


@dataclass(frozen=True, slots=True)
class ReplaceCredentialCommand:
    """A new `name`, new `data` (a rotation), or both; None keeps the current one. `type` may
    repeat the current type (a GET body sent back) but never changes it."""

    credential_id: uuid.UUID
    name: str | None = None
    data: Mapping[str, object] | None = field(default=None, repr=False)
    type: str | None = None


@dataclass(frozen=True, slots=True)
class ListCredentialsQuery:
    limit: int = 20
    cursor: str | None = None
    type: str | None = None


async def _owned(
    credentials: CredentialRepository, owner: UserId, credential_id: uuid.UUID
) -> Credential:
    return owned_by(
        owner, await credentials.get(CredentialId(credential_id)), CredentialNotFoundError
    )


class CreateCredential:
    """Store a new credential for the caller.

    - `type` must be known and `data` valid for it; errors name fields, never values.
    - The secret is written first and the credential row after, so a failure in between leaves
      at worst an unreferenced secret (removed on the spot when possible, else by
      `SweepSecrets`), never a credential without its secret.
    """

    def __init__(
        self,
        credentials: CredentialRepository,
        secrets: SecretStore,
        writes: WriteRateLimiter,
        quotas: Quotas,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._credentials, self._secrets, self._uow, self._clock = credentials, secrets, uow, clock
        self._writes, self._quotas = writes, quotas

    async def __call__(self, actor: Principal, command: CreateCredentialCommand) -> Credential:
        errors: list[FieldError] = []
        name = check_name(command.name, errors)
        check_type(command.type, errors)
        raise_if(errors)
        data = check_data(command.type, command.data, errors)
        raise_if(errors)
        # Before the secret is written: a refused create must cost no (billed) secret.
        await take_write(self._writes, actor.user_id, self._clock.now())
        limit = self._quotas.max_credentials
        refuse_past(await self._credentials.count(actor.user_id, limit), limit, "credentials")
        credential_id = CredentialId(new_uuid())
        ref = await self._secrets.put(SecretBinding(actor.user_id, credential_id), data)
        now = self._clock.now()
        credential = Credential(
            id=credential_id,
            owner_id=actor.user_id,
            name=name,
            type=command.type,
            fields=data.fields,
            secret_ref=ref,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._credentials.add(credential)
            await self._uow.commit()
        except BaseException:
            await forget_secret(self._secrets, ref)
            raise
        return credential


class GetCredential:
    """Read one of the caller's credentials: its metadata and field names."""

    def __init__(self, credentials: CredentialRepository) -> None:
        self._credentials = credentials

    async def __call__(self, actor: Principal, credential_id: uuid.UUID) -> Credential:
        return await _owned(self._credentials, actor.user_id, credential_id)


class ListCredentials:
    """List the caller's credentials newest first, optionally of one type."""

    def __init__(self, credentials: CredentialRepository) -> None:
        self._credentials = credentials

    async def __call__(self, actor: Principal, query: ListCredentialsQuery) -> Page[Credential]:
        limit = check_limit(query.limit)
        errors: list[FieldError] = []
        if query.type is not None:
            check_type(query.type, errors, "type", Location.QUERY)
        raise_if(errors)
        scope = f"credentials|{actor.user_id}|type={query.type!r}"
        after = decode_time_id_cursor(query.cursor, scope) if query.cursor else None
        request = PageRequest(limit, after)
        rows = await self._credentials.page(actor.user_id, query.type, request)
        return page_of(rows, request, _position, scope)


class ReplaceCredential:
    """Rename a credential, rotate its values, or both.

    - New values must be valid for the credential's type, which never changes.
    - A rotation writes the new secret, points the credential at it and commits, and only then
      deletes the old secret: a failure at any step leaves the credential readable.
    """

    def __init__(
        self,
        credentials: CredentialRepository,
        secrets: SecretStore,
        writes: WriteRateLimiter,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._credentials, self._secrets, self._uow, self._clock = credentials, secrets, uow, clock
        self._writes = writes

    async def __call__(self, actor: Principal, command: ReplaceCredentialCommand) -> Credential:
        await take_write(self._writes, actor.user_id, self._clock.now())
        credential = await _owned(self._credentials, actor.user_id, command.credential_id)
        errors: list[FieldError] = []
        if command.name is None and command.data is None:
            errors.append(FieldError("", "give a new name, new data, or both"))
        if command.type is not None and command.type != credential.type:
            errors.append(FieldError("/type", "cannot change; create a new credential instead"))
        name = check_name(command.name, errors) if command.name is not None else None
        data = (
            check_data(credential.type, command.data, errors) if command.data is not None else None
        )
        raise_if(errors)
        now = self._clock.now()
        if name is not None:
            credential.rename(name, at=now)
        if data is None:
            await self._credentials.update(credential)
            await self._uow.commit()
            return credential
        old_ref = credential.secret_ref
        new_ref = await self._secrets.put(credential.binding, data)
        credential.rotate(new_ref, data.fields, at=now)
        try:
            await self._credentials.update(credential)
            await self._uow.commit()
        except BaseException:
            await forget_secret(self._secrets, new_ref)
            raise
        await forget_secret(self._secrets, old_ref)
        await self._uow.commit()
        return credential


class DeleteCredential:
    """Delete one of the caller's credentials and its secret.

    - Refused with CredentialInUseError while the current version of a workflow references it,
      naming those workflows.
    - The row goes first; the secret after the commit (a leftover is swept).
    """

    def __init__(
        self,
        credentials: CredentialRepository,
        workflows: WorkflowRepository,
        secrets: SecretStore,
        writes: WriteRateLimiter,
        uow: UnitOfWork,
        clock: Clock,
    ) -> None:
        self._credentials, self._workflows = credentials, workflows
        self._secrets, self._writes, self._uow, self._clock = secrets, writes, uow, clock

    async def __call__(self, actor: Principal, credential_id: uuid.UUID) -> None:
        await take_write(self._writes, actor.user_id, self._clock.now())
        credential = await _owned(self._credentials, actor.user_id, credential_id)
        users = await self._workflows.using_credential(actor.user_id, credential.id)
        if users:
            raise CredentialInUseError([(str(w.id), w.name) for w in users])
        await self._credentials.delete(credential.id)
        await self._uow.commit()
        await forget_secret(self._secrets, credential.secret_ref)
        await self._uow.commit()


@dataclass(frozen=True, slots=True)
class ResolvedCredential:
    credential: Credential
    data: SecretData


class ResolveCredential:
    """The values of a credential, for the worker running a node of its owner's workflow.
    No HTTP route reaches this use case."""

    def __init__(self, credentials: CredentialRepository, secrets: SecretStore) -> None:
        self._credentials, self._secrets = credentials, secrets

    async def __call__(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedCredential:
        credential = await _owned(self._credentials, owner, credential_id)
        data = await self._secrets.get(credential.secret_ref, credential.binding)
        return ResolvedCredential(credential, data)


class SweepSecrets:
    """Delete secrets that no credential (nor any of `holders`: webhooks) references and that
    are older than SWEEP_GRACE: what a crash between writing a secret and committing its
    credential left behind."""

    def __init__(
        self,
        credentials: CredentialRepository,
        secrets: SecretStore,
        uow: UnitOfWork,
        clock: Clock,
        holders: Sequence[SecretHolder] = (),
    ) -> None:
        self._credentials, self._secrets, self._uow, self._clock = credentials, secrets, uow, clock
        self._holders = holders

    async def __call__(self) -> int:
        referenced = await self._credentials.secret_refs()
        for holder in self._holders:
            referenced |= await holder.secret_refs()
        orphans = await self._secrets.unreferenced(referenced, self._clock.now() - SWEEP_GRACE)
        for ref in orphans:
            await self._secrets.delete(ref)
        await self._uow.commit()
        return len(orphans)


async def forget_secret(secrets: SecretStore, ref: SecretRef) -> None:
    """Best-effort delete of a secret nobody references; a failure leaves it to the sweep."""
    try:
        await secrets.delete(ref)
    except Exception:
        _log.warning("could not delete an unreferenced secret; the sweep will", exc_info=True)


def _position(credential: Credential) -> Position:
    return time_id_position(credential.created_at, credential.id)
