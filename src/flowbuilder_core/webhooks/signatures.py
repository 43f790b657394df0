"""The checks of a webhook request's authenticity, one per auth mode (docs/API.md, Webhooks).

- `signature`: `X-FlowBuilder-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
  "<t>." + raw body)>`, accepted within TOLERANCE_S of `t` (either side). The caller refuses
  the same `v1` a second time (`check_signature` answers it for that).
- `token`: `X-FlowBuilder-Token: <secret>`.
- `github`: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`.
- `none`: nothing to check; the unguessable URL is the only key.

Every comparison of something the client sent with something derived from the secret is
constant-time (`hmac.compare_digest`), and every check answers only yes or no: the caller's
401 must not say which part failed.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Final

SIGNATURE_HEADER: Final = "x-flowbuilder-signature"
TOKEN_HEADER: Final = "x-flowbuilder-token"  # noqa: S105 - a header name
GITHUB_HEADER: Final = "x-hub-signature-256"
AUTH_HEADERS: Final = frozenset(
    {SIGNATURE_HEADER, TOKEN_HEADER, GITHUB_HEADER, "x-hub-signature", "authorization", "cookie"}
)
"""Headers never kept in a run's input: credentials, and the signatures and token of every
mode (GitHub's SHA-1 `X-Hub-Signature` included), whatever the hook's own mode."""

TOLERANCE_S: Final = 300
MAX_SIGNATURE_HEADER: Final = 1024
_MAX_TIMESTAMP_DIGITS: Final = 12


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    """Constant-time equality (in the length of `expected`) of two texts."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-FlowBuilder-Signature` value a sender computes (for tests and examples)."""
    return f"t={timestamp},v1={_hmac_hex(secret, f'{timestamp}.'.encode() + body)}"


def check_signature(secret: str, header: str | None, body: bytes, now: datetime) -> str | None:
    """The `v1` digest the header proves (lower-case hex), or None when it proves nothing: no
    header, a malformed one, a `t` more than TOLERANCE_S away from `now`, or no `v1` that
    matches. Several `v1=` entries may be given (a sender rotating its secret); one must match.
    """
    if header is None or len(header) > MAX_SIGNATURE_HEADER:
        return None
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        if name == "t":
            if timestamp is not None:
                return None
            timestamp = value
        elif name == "v1":
            candidates.append(value)
    if (
        timestamp is None
        or not candidates
        or not timestamp.isascii()
        or not timestamp.isdigit()
        or len(timestamp) > _MAX_TIMESTAMP_DIGITS
    ):
        return None
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_S:
        return None
    expected = _hmac_hex(secret, f"{timestamp}.".encode() + body)
    matched = False
    for candidate in candidates:  # every one compared: no early exit on a match
        matched |= _same(expected, candidate.lower())
    return expected if matched else None


def check_token(secret: str, header: str | None) -> bool:
    return header is not None and _same(secret, header)


def check_github(secret: str, header: str | None, body: bytes) -> bool:
    if header is None or len(header) > MAX_SIGNATURE_HEADER:
        return False
    return _same("sha256=" + _hmac_hex(secret, body), header.strip().lower())
