"""HTTP header conventions: ETags are the workflow version; `If-Match` lists versions or `*`."""

from __future__ import annotations

import re

from flowbuilder_core.shared.errors import FieldError, InvalidInputError

_ENTITY_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*')


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> list[int] | None:
    """The versions an `If-Match` accepts; None when absent or `*` (any current version).

    A tag that is not one of our versions matches nothing, so the request fails with 412;
    a header that is not a list of entity tags at all is a 422.
    """
    if header is None or header.strip() == "*":
        return None
    versions: list[int] = []
    for part in header.split(","):
        match = _ENTITY_TAG.fullmatch(part)
        if match is None:
            raise InvalidInputError(
                [FieldError.header("If-Match", 'must be "*" or a list of entity tags like "3"')]
            )
        if match.group(1).isdigit():
            versions.append(int(match.group(1)))
    return versions
