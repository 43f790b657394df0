"""Embedded mode's own token issuer: a local RSA key signs tokens only this installation accepts."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from flowbuilder_adapters.clerk import ALGORITHM, decode_session_token, read_kid
from flowbuilder_core.shared.errors import UnauthenticatedError
from flowbuilder_core.shared.identity import Principal, TokenVerifier

logger = logging.getLogger(__name__)

ISSUER = "flowbuilder-embedded"
KEY_FILE_NAME = "dev-signing-key.pem"
_KEY_BITS = 2048


class DevTokenIssuer:
    """Signs RS256 session tokens with a private key kept in a local file.

    The tokens look like Clerk's session tokens (`sub`, `sid`, `iss` = "flowbuilder-embedded",
    `iat`, `nbf`, `exp`, a `kid` in the header) so the rest of the server cannot tell the
    difference; only the holder of the key file can mint them. For embedded mode and
    development only.
    """

    def __init__(self, private_key: RSAPrivateKey) -> None:
        self._private_key = private_key
        self.kid = _thumbprint(private_key.public_key())

    @classmethod
    def load(cls, directory: Path) -> DevTokenIssuer:
        """The issuer whose key is `directory/dev-signing-key.pem`; FileNotFoundError, naming
        the file, when there is none (`load_or_create` makes one)."""
        path = directory / KEY_FILE_NAME
        if not path.exists():
            raise FileNotFoundError(f"no dev signing key at {path}; start the embedded server")
        return cls(_load_key(path))

    @classmethod
    def load_or_create(cls, directory: Path) -> DevTokenIssuer:
        """The issuer whose key is `directory/dev-signing-key.pem`, creating both if missing.

        A new key file is written readable by its owner only (0600), in one step, so a
        concurrent start (the server and `flowbuilder dev-token`) ends up with one key.
        """
        path = directory / KEY_FILE_NAME
        if not path.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_key_file(path)
        return cls(_load_key(path))

    @property
    def public_key(self) -> RSAPublicKey:
        return self._private_key.public_key()

    def issue(self, user: str, ttl_s: int = 24 * 3600, *, now: float | None = None) -> str:
        """A token for `user`, valid for `ttl_s` seconds from `now` (Unix time, default now)."""
        if not user:
            raise ValueError("user must not be empty")
        issued_at = int(time.time() if now is None else now)
        claims = {
            "sub": user,
            # The verifiers share Clerk's rule that a session token carries its session id.
            "sid": f"sess_dev_{secrets.token_hex(8)}",
            "iss": ISSUER,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + ttl_s,
        }
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verifier(self, *, leeway_s: float = 5.0) -> DevTokenVerifier:
        """The verifier that accepts this issuer's tokens and nobody else's."""
        return DevTokenVerifier(self.public_key, leeway_s=leeway_s)


class DevTokenVerifier(TokenVerifier):
    """Accepts tokens signed by one local key (a DevTokenIssuer's) for issuer
    "flowbuilder-embedded", with the same checks as Clerk tokens; anything else is
    UnauthenticatedError. It never needs the network, so never DependencyUnavailableError.
    """

    def __init__(self, public_key: RSAPublicKey, *, leeway_s: float = 5.0) -> None:
        self._public_key = public_key
        self._kid = _thumbprint(public_key)
        self._leeway_s = leeway_s

    async def verify(self, token: str) -> Principal:
        try:
            if read_kid(token) != self._kid:
                raise UnauthenticatedError("token was signed by another key")
            user_id = decode_session_token(
                token,
                self._public_key,
                issuer=ISSUER,
                authorized_parties=None,
                audience=None,
                leeway=self._leeway_s,
            )
        except UnauthenticatedError as exc:
            logger.debug("dev token rejected: %s", exc.detail)
            raise
        return Principal(user_id)


def _create_key_file(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    # mkstemp creates the file 0600; linking it into place fails if another process got there
    # first, and then its key wins. No reader ever sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dev-signing-key.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        Path(tmp).chmod(0o600)
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
            logger.info("created the embedded-mode signing key %s", path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _load_key(path: Path) -> RSAPrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _thumbprint(public_key: RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint: a stable kid that changes with the key."""
    numbers = public_key.public_numbers()
    jwk = {"e": _b64_uint(numbers.e), "kty": "RSA", "n": _b64_uint(numbers.n)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _b64_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
