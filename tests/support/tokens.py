"""Clerk-style session tokens for tests: RSA signing keys and a token factory.

key = make_rsa_key("kid-1")
token = mint_token(key)                                  # valid for 60 s, like Clerk's
token = mint_token(key, exp=None)                        # a claim set to None is left out
token = mint_token(key, iss="https://evil.example")      # any claim overridden
token = mint_token(key, headers={"kid": "other"})        # header fields overridden/added
token = mint_token(key, algorithm="HS256")               # HMAC keyed with the public PEM
token = mint_token(key, algorithm="none")                # unsigned
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://clerk.flowbuilder.test"
AUTHORIZED_PARTY = "https://app.flowbuilder.test"


@dataclass(frozen=True)
class SigningKey:
    """A private RSA key and the `kid` it is published under."""

    kid: str
    private_key: RSAPrivateKey = field(repr=False)

    def jwk(self, **overrides: Any) -> dict[str, Any]:
        """The public JWK as a JWKS serves it (`use` sig, `alg` RS256); None drops a field."""
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return _merge(jwk, overrides)

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def make_rsa_key(kid: str | None = None, *, bits: int = 2048) -> SigningKey:
    """A fresh RSA key, published under `kid` (random unless given)."""
    kid = kid if kid is not None else f"ins_{secrets.token_hex(8)}"
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))


def make_user_id() -> str:
    return f"user_{secrets.token_hex(12)}"


def mint_token(
    key: SigningKey,
    *,
    algorithm: str = "RS256",
    headers: dict[str, Any] | None = None,
    now: float | None = None,
    **claims: Any,
) -> str:
    """A Clerk-style session token signed by `key`.

    Default claims: `sub` a fresh "user_..." id, `iss` ISSUER, `azp` AUTHORIZED_PARTY,
    `iat` now, `nbf` now - 10, `exp` now + 60. Keyword arguments override claims (None drops
    one); `headers` overrides the header (`kid` defaults to key.kid; None drops a field).
    `algorithm` RS256/RS384/RS512 signs with the private key; HS256/HS384/HS512 uses the
    public key's PEM as the HMAC secret (the classic key-confusion attack); "none" is unsigned.
    """
    issued_at = int(time.time() if now is None else now)
    payload = _merge(
        {
            "sub": make_user_id(),
            "iss": ISSUER,
            "azp": AUTHORIZED_PARTY,
            "iat": issued_at,
            "nbf": issued_at - 10,
            "exp": issued_at + 60,
            "sid": f"sess_{secrets.token_hex(8)}",
        },
        claims,
    )
    header = _merge({"alg": algorithm, "typ": "JWT", "kid": key.kid}, headers or {})
    if algorithm.startswith("RS"):
        return jwt.encode(payload, key.private_key, algorithm=algorithm, headers=header)
    return _encode_by_hand(header, payload, key, algorithm)


def _encode_by_hand(
    header: dict[str, Any], payload: dict[str, Any], key: SigningKey, algorithm: str
) -> str:
    # pyjwt refuses to make these tokens, rightly; an attacker builds them by hand.
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if algorithm == "none":
        return f"{signing_input}."
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[algorithm]
    signature = hmac.new(key.public_pem(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    return {name: value for name, value in merged.items() if value is not None}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
