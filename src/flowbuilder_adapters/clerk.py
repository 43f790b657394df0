"""Clerk session tokens: RS256 JWTs checked against Clerk's JWKS, fetched and cached async."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from jwt.algorithms import RSAAlgorithm

from flowbuilder_core.shared.errors import DependencyUnavailableError, UnauthenticatedError
from flowbuilder_core.shared.identity import Principal, TokenVerifier
from flowbuilder_core.shared.ids import UserId

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
# A session token is a few hundred bytes; refusing giants up front keeps parsing cheap.
_MAX_TOKEN_CHARS = 16 * 1024
_MIN_RSA_BITS = 2048
_REASON_CHARS = 200


def read_kid(token: str) -> str:
    """The `kid` of an RS256 token's header, read before any signature check.

    Raises UnauthenticatedError when the token is not a JWS, is not RS256 or has no `kid`.
    A `kid` is required: Clerk always sends one, and trying every cached key instead would
    multiply the work an attacker can cause per token.
    """
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise UnauthenticatedError("token is empty or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise UnauthenticatedError(f"malformed token header: {_reason(exc)}") from None
    alg = header.get("alg")
    if alg != ALGORITHM:
        raise UnauthenticatedError(f"algorithm {_quote(alg)} is not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise UnauthenticatedError("token header has no kid")
    return kid


def decode_session_token(
    token: str,
    key: RSAPublicKey,
    *,
    issuer: str,
    authorized_parties: frozenset[str] | None,
    audience: frozenset[str] | None,
    leeway: float,
) -> UserId:
    """The user id (`sub`) of a session token signed by `key`; see `decode_session_claims`."""
    user_id, _ = decode_session_claims(
        token,
        key,
        issuer=issuer,
        authorized_parties=authorized_parties,
        audience=audience,
        leeway=leeway,
    )
    return user_id


def decode_session_claims(
    token: str,
    key: RSAPublicKey,
    *,
    issuer: str,
    authorized_parties: frozenset[str] | None,
    audience: frozenset[str] | None,
    leeway: float,
) -> tuple[UserId, float]:
    """The user id (`sub`) and expiry (`exp`, seconds since the epoch) of a session token
    signed by `key`.

    Checks: RS256 signature by `key` (no other algorithm, never a key named in the header);
    `exp`, `nbf`, `sub`, `sid` and `iss` present, the times valid within `leeway` seconds, `iss`
    equal to `issuer`; `azp` present and in `authorized_parties` when that is given; no `aud`,
    or an `aud` naming (one of its entries) a member of `audience`. A token with `aud` is a
    JWT-template token minted for someone, not a session: without `audience` it is refused.
    Raises UnauthenticatedError with the reason, never the token, in its detail.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "nbf", "sub", "iss"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise UnauthenticatedError("token has expired") from None
    except jwt.ImmatureSignatureError:
        raise UnauthenticatedError("token is not valid yet (nbf)") from None
    except jwt.InvalidSignatureError:
        raise UnauthenticatedError("token signature does not verify") from None
    except jwt.InvalidIssuerError:
        raise UnauthenticatedError("token issuer is not the configured issuer") from None
    except jwt.PyJWTError as exc:
        raise UnauthenticatedError(f"invalid token: {_reason(exc)}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise UnauthenticatedError("token subject is empty")
    sid = claims.get("sid")
    if not isinstance(sid, str) or not sid:
        # Clerk puts the session id in every session token and nowhere else.
        raise UnauthenticatedError("token has no sid: it is not a session token")
    if "aud" in claims:
        _check_audience(claims["aud"], audience)
    if authorized_parties is not None:
        azp = claims.get("azp")
        if not isinstance(azp, str):
            raise UnauthenticatedError("token has no azp but authorized parties are configured")
        if azp not in authorized_parties:
            raise UnauthenticatedError(f"token azp {_quote(azp)} is not an authorized party")
    return UserId(sub), float(claims["exp"])


def _check_audience(aud: object, audience: frozenset[str] | None) -> None:
    if audience is None:
        raise UnauthenticatedError("token has aud but no audience is configured")
    named = [aud] if isinstance(aud, str) else aud
    if not isinstance(named, list) or not all(isinstance(entry, str) for entry in named):
        raise UnauthenticatedError("token aud is neither a string nor a list of strings")
    if audience.isdisjoint(named):
        raise UnauthenticatedError(f"token aud {_quote(aud)} is not a configured audience")


class ClerkTokenVerifier(TokenVerifier):
    """Verifies Clerk session tokens against the JWKS at `jwks_url`.

    - Keys are fetched with httpx (never blocking the event loop; `fetch_timeout_s` bounds a
      fetch) and cached; the set is refreshed once it is older than `refresh_after_s`.
    - A token whose `kid` is not cached triggers a refetch; the endpoint is asked at most once
      per `unknown_kid_cooldown_s` whatever the cause, so a flood of random `kid`s costs one
      fetch. Concurrent fetches are coalesced: one request to the endpoint, everyone waits.
    - A failed fetch keeps the cached keys. A refetched set replaces the cache, so a key that
      Clerk stops serving stops verifying.
    - Only RSA signing keys (`kty` RSA, `use` sig or absent, `alg` RS256 or absent, at least
      2048 bits) are kept; anything else in the set is ignored.
    - An unknown `kid` is UnauthenticatedError while any key is cached, and
      DependencyUnavailableError when none is (the endpoint has never answered usefully).
    - `headers` are sent with every fetch: `{"Authorization": "Bearer <CLERK_SECRET_KEY>"}`
      for Clerk's Backend API (`https://api.clerk.com/v1/jwks`).
    - `clock` is monotonic seconds; tests inject one to cross the cooldown without sleeping.
    - A verified token is remembered (up to `cache_size` of them) until its `exp` plus the
      leeway by `wall_clock` (epoch seconds): a UI polling with its session token pays the
      RSA check once. Only verified tokens are remembered, and only while their `kid` is in
      the cached key set and that set is fresh: a key dropped from a refetched JWKS takes the
      tokens it signed with it.
    - `issuer` is required: every token's `iss` is checked. `audience`: see
      `decode_session_claims`.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        authorized_parties: frozenset[str] | None,
        audience: frozenset[str] | None = None,
        headers: Mapping[str, str] | None = None,
        http: httpx.AsyncClient | None = None,
        refresh_after_s: float = 300.0,
        unknown_kid_cooldown_s: float = 30.0,
        leeway_s: float = 5.0,
        fetch_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        cache_size: int = 10_000,
        on_fetch: Callable[[bool], None] | None = None,
    ) -> None:
        """`on_fetch` hears every fetch of the key set and whether it succeeded (metrics)."""
        self._on_fetch = on_fetch if on_fetch is not None else (lambda ok: None)
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._authorized_parties = authorized_parties
        self._audience = audience
        self._headers = dict(headers or {})
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=fetch_timeout_s)
        self._timeout = httpx.Timeout(fetch_timeout_s)
        self._refresh_after_s = refresh_after_s
        self._cooldown_s = unknown_kid_cooldown_s
        self._leeway_s = leeway_s
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last fetch, successful or not
        self._lock = asyncio.Lock()
        self._wall_clock, self._cache_size = wall_clock, cache_size
        self._verified: dict[str, _Verified] = {}

    async def verify(self, token: str) -> Principal:
        cached = self._verified.pop(token, None)
        if cached is not None and self._still_good(cached):
            self._verified[token] = cached
            return cached.principal
        try:
            kid = read_kid(token)
            key = await self._key_for(kid)
            user_id, expires_at = decode_session_claims(
                token,
                key,
                issuer=self._issuer,
                authorized_parties=self._authorized_parties,
                audience=self._audience,
                leeway=self._leeway_s,
            )
        except UnauthenticatedError as exc:
            logger.debug("session token rejected: %s", exc.detail)
            raise
        principal = Principal(user_id)
        self._remember(token, _Verified(principal, expires_at, kid))
        return principal

    def _still_good(self, verified: _Verified) -> bool:
        """Unexpired, and its key still served: a stale key set sends the token through the
        full check, whose refetch may show the key gone."""
        return (
            self._wall_clock() <= verified.expires_at + self._leeway_s
            and verified.kid in self._keys
            and not self._is_stale()
        )

    def _remember(self, token: str, verified: _Verified) -> None:
        """A verified token stays good until it expires: the signature and claims cannot change,
        so a repeat (a UI polling with its session token) skips the RSA check. Bounded."""
        if len(self._verified) >= self._cache_size:
            self._verified.pop(next(iter(self._verified)))
        self._verified[token] = verified

    async def aclose(self) -> None:
        """Close the HTTP client, if this verifier created it."""
        if self._owns_http:
            await self._http.aclose()

    async def _key_for(self, kid: str) -> RSAPublicKey:
        key = self._keys.get(kid)
        if key is not None and (not self._is_stale() or self._lock.locked()):
            # Fresh, or a refresh is already in flight: the cached key serves meanwhile.
            return key
        # Whoever waited on the lock re-checks after the fetch in flight: it sees that
        # fetch's keys, or its cooldown, and does not fetch again (single flight).
        async with self._lock:
            if (self._is_stale() or kid not in self._keys) and self._may_fetch():
                await self._fetch()
        key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise DependencyUnavailableError("no signing key could be obtained from the JWKS")
        raise UnauthenticatedError(f"no signing key has kid {_quote(kid)}")

    def _is_stale(self) -> bool:
        return self._fetched_at is None or (
            self._clock() - self._fetched_at >= self._refresh_after_s
        )

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._cooldown_s

    async def _fetch(self) -> None:
        self._attempted_at = self._clock()
        try:
            keys = await self._download()
        except _JwksError as exc:
            self._on_fetch(False)
            logger.warning(
                "JWKS fetch from %s failed, keeping %d cached keys: %s",
                self._jwks_url,
                len(self._keys),
                exc,
            )
            return
        self._on_fetch(True)
        self._keys = keys
        self._fetched_at = self._clock()
        logger.info("JWKS fetched from %s: kids %s", self._jwks_url, sorted(keys))

    async def _download(self) -> dict[str, RSAPublicKey]:
        try:
            response = await self._http.get(
                self._jwks_url, headers=self._headers, timeout=self._timeout
            )
            response.raise_for_status()
            document = response.json()
        except httpx.HTTPStatusError as exc:
            raise _JwksError(f"HTTP {exc.response.status_code}") from None
        except httpx.HTTPError as exc:
            raise _JwksError(f"{type(exc).__name__}: {_reason(exc)}") from None
        except ValueError:
            raise _JwksError("the response is not JSON") from None
        keys = parse_jwks(document)
        if not keys:
            raise _JwksError("the key set holds no usable RS256 signing key")
        return keys


def parse_jwks(document: object) -> dict[str, RSAPublicKey]:
    """The usable RS256 verification keys of a JWKS document, by `kid`; the rest is skipped."""
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        return {}
    keys: dict[str, RSAPublicKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if (
            entry.get("kty") != "RSA"
            or entry.get("use", "sig") != "sig"
            or entry.get("alg", ALGORITHM) != ALGORITHM
            or not isinstance(kid, str)
            or not kid
            or kid in keys
        ):
            continue
        try:
            key = RSAAlgorithm.from_jwk(entry)
        except (jwt.PyJWTError, ValueError, TypeError):
            logger.info("JWKS entry %s is not a valid RSA key; skipped", _quote(kid))
            continue
        # A set that leaks a private key is still only used to verify.
        public = key.public_key() if isinstance(key, RSAPrivateKey) else key
        if public.key_size < _MIN_RSA_BITS:
            logger.info(
                "JWKS entry %s is shorter than %d bits; skipped", _quote(kid), _MIN_RSA_BITS
            )
            continue
        keys[kid] = public
    return keys


class _JwksError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    expires_at: float  # the token's `exp`, epoch seconds
    kid: str  # the key it verified with: when the JWKS drops it, the entry is dead


def _reason(exc: BaseException) -> str:
    return str(exc)[:_REASON_CHARS]


def _quote(value: object) -> str:
    # Header and claim values are attacker-controlled: bounded and repr'd, safe for a log line.
    return repr(value)[:64]
