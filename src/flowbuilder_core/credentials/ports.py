"""Ports of the credentials context."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from flowbuilder_core.credentials.model import (
    Credential,
    CredentialId,
    SecretBinding,
    SecretData,
    SecretRef,
)
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest


class SecretStore(Protocol):
    """Keeps secret values outside the credential rows.

    - `put` always stores a NEW secret and returns its reference; it never overwrites one, so a
      rotation can point the credential at the new secret first and delete the old one after.
    - `get` returns the values only for the binding they were stored with. Raises
      SecretNotFoundError for an unknown reference, SecretUnreadableError when the value fails
      its integrity check (tampered, or bound to another credential or owner).
    - `delete` is idempotent: deleting a missing secret is not an error.
    - Writes of a store that lives in the database take effect with the unit of work's commit;
      a store outside it (Secrets Manager) writes at once. Use cases order their writes so that
      a credential never points at a missing secret either way (see `CreateCredential`).
    - `unreferenced` lists the store's secrets created before `before` that no credential
      references, given the set that is referenced: what a failed write left behind.
    """

    async def put(self, binding: SecretBinding, data: SecretData) -> SecretRef: ...

    async def get(self, ref: SecretRef, binding: SecretBinding) -> SecretData: ...

    async def delete(self, ref: SecretRef) -> None: ...

    async def unreferenced(
        self, referenced: set[SecretRef], before: datetime
    ) -> Sequence[SecretRef]: ...


class SecretHolder(Protocol):
    """Holds secret references outside the credentials (a webhook's signing secret), so that
    the sweep of unreferenced secrets keeps them."""

    async def secret_refs(self) -> set[SecretRef]: ...


class CredentialRepository(Protocol):
    """Credential metadata (never values) in the unit of work of the current scope.

    Lists are newest first on `(created_at, id)`, read after a keyset position
    `(created_at as RFC 3339 text, id as text)`, `limit + 1` rows at most.
    """

    async def get(self, credential_id: CredentialId) -> Credential | None: ...

    async def add(self, credential: Credential) -> None: ...

    async def update(self, credential: Credential) -> None: ...

    async def delete(self, credential_id: CredentialId) -> None: ...

    async def count(self, owner: UserId, up_to: int) -> int:
        """The owner's credentials, counted up to `up_to` (a bounded count)."""

    async def page(
        self, owner: UserId, credential_type: str | None, request: PageRequest
    ) -> Sequence[Credential]: ...

    async def secret_refs(self) -> set[SecretRef]:
        """Every secret reference any credential holds (for sweeping unreferenced secrets)."""
