"""The embedded-mode token issuer and its verifier."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from flowbuilder_adapters.dev_issuer import ISSUER, KEY_FILE_NAME, DevTokenIssuer
from flowbuilder_core.shared.errors import UnauthenticatedError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId

from support.tokens import make_rsa_key, mint_token


async def test_an_issued_token_verifies_as_its_user(tmp_path: Path) -> None:
    issuer = DevTokenIssuer.load_or_create(tmp_path)

    principal = await issuer.verifier().verify(issuer.issue("alice"))

    assert principal == Principal(UserId("alice"))


def test_an_issued_token_is_a_session_of_the_embedded_issuer_valid_for_a_day(
    tmp_path: Path,
) -> None:
    issuer = DevTokenIssuer.load_or_create(tmp_path)

    token = issuer.issue("alice", now=1_700_000_000)

    claims = jwt.decode(token, options={"verify_signature": False})
    session_id = claims.pop("sid")
    assert session_id.startswith("sess_dev_")
    assert (
        session_id != jwt.decode(issuer.issue("alice"), options={"verify_signature": False})["sid"]
    )
    assert claims == {
        "sub": "alice",
        "iss": ISSUER,
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "exp": 1_700_000_000 + 24 * 3600,
    }
    assert jwt.get_unverified_header(token)["kid"] == issuer.kid


def test_the_key_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "not" / "there" / "yet"

    DevTokenIssuer.load_or_create(directory)

    mode = stat.S_IMODE((directory / KEY_FILE_NAME).stat().st_mode)
    assert mode == 0o600
    assert list(directory.iterdir()) == [directory / KEY_FILE_NAME]


async def test_the_key_is_reused_across_loads(tmp_path: Path) -> None:
    token = DevTokenIssuer.load_or_create(tmp_path).issue("alice")

    reloaded = DevTokenIssuer.load_or_create(tmp_path)

    assert (await reloaded.verifier().verify(token)).user_id == "alice"


async def test_a_token_from_another_directorys_key_is_rejected(tmp_path: Path) -> None:
    ours = DevTokenIssuer.load_or_create(tmp_path / "ours")
    theirs = DevTokenIssuer.load_or_create(tmp_path / "theirs")

    with pytest.raises(UnauthenticatedError):
        await ours.verifier().verify(theirs.issue("alice"))


async def test_a_token_from_another_key_with_our_kid_is_rejected(tmp_path: Path) -> None:
    ours = DevTokenIssuer.load_or_create(tmp_path)
    forged = mint_token(make_rsa_key(ours.kid), iss=ISSUER, sub="alice")

    with pytest.raises(UnauthenticatedError) as caught:
        await ours.verifier().verify(forged)

    assert "signature" in caught.value.detail


async def test_an_expired_token_is_rejected(tmp_path: Path) -> None:
    issuer = DevTokenIssuer.load_or_create(tmp_path)
    token = issuer.issue("alice", ttl_s=60, now=time.time() - 3600)

    with pytest.raises(UnauthenticatedError) as caught:
        await issuer.verifier().verify(token)

    assert "expired" in caught.value.detail
    assert token not in str(caught.value)


async def test_a_token_signed_by_our_key_for_another_issuer_is_rejected() -> None:
    key = make_rsa_key()
    issuer = DevTokenIssuer(key.private_key)
    token = mint_token(key, headers={"kid": issuer.kid}, iss="https://clerk.example")

    with pytest.raises(UnauthenticatedError):
        await issuer.verifier().verify(token)


async def test_a_token_signed_by_our_key_without_a_session_id_is_rejected() -> None:
    key = make_rsa_key()
    issuer = DevTokenIssuer(key.private_key)
    token = mint_token(key, headers={"kid": issuer.kid}, iss=ISSUER, azp=None, sid=None)

    with pytest.raises(UnauthenticatedError) as caught:
        await issuer.verifier().verify(token)

    assert "sid" in caught.value.detail
