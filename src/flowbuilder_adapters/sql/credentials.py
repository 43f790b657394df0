"""A stand-in credential directory for the SQL adapters."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping

from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.ports import CredentialDirectory


class EmptyCredentialDirectory(CredentialDirectory):
    """No credential exists for anyone: credentials (and their table) arrive with the credentials
    issue, which replaces this with a directory over the credentials repository. Until then
    every referenced credential is reported missing, so no definition that uses one is
    runnable."""

    async def types_of(
        self, owner: UserId, credential_ids: Collection[uuid.UUID]
    ) -> Mapping[uuid.UUID, str]:
        return {}
