"""ClerkTokenVerifier against a JWKS served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from flowbuilder_adapters import clerk
from flowbuilder_adapters.clerk import ClerkTokenVerifier
from flowbuilder_adapters.metrics import REGISTRY, observe_jwks_fetch
from flowbuilder_core.shared.errors import DependencyUnavailableError, UnauthenticatedError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.ids import UserId

from support.jwks import JwksServer
from support.tokens import AUTHORIZED_PARTY, ISSUER, SigningKey, make_rsa_key, mint_token

COOLDOWN_S = 30.0
REFRESH_S = 300.0


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeVerifier = Callable[..., ClerkTokenVerifier]


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return make_rsa_key("ins_primary")


@pytest.fixture
def jwks(key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer(key) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_verifier(jwks: JwksServer, clock: FakeClock) -> AsyncIterator[MakeVerifier]:
    created: list[ClerkTokenVerifier] = []

    def make(**overrides: Any) -> ClerkTokenVerifier:
        arguments: dict[str, Any] = {
            "issuer": ISSUER,
            "authorized_parties": frozenset({AUTHORIZED_PARTY}),
            "clock": clock,
            "refresh_after_s": REFRESH_S,
            "unknown_kid_cooldown_s": COOLDOWN_S,
            **overrides,
        }
        verifier = ClerkTokenVerifier(arguments.pop("jwks_url", jwks.url), **arguments)
        created.append(verifier)
        return verifier

    yield make
    for verifier in created:
        await verifier.aclose()


@pytest.fixture
def verifier(make_verifier: MakeVerifier) -> ClerkTokenVerifier:
    return make_verifier()


async def rejected(verifier: ClerkTokenVerifier, token: str) -> UnauthenticatedError:
    """The UnauthenticatedError `verify` raises, checked not to leak the token."""
    with pytest.raises(UnauthenticatedError) as caught:
        await verifier.verify(token)
    assert_does_not_leak(caught.value, token)
    return caught.value


def assert_does_not_leak(error: Exception, token: str) -> None:
    text = f"{error} {error!r} {getattr(error, 'detail', '')}"
    if len(token) >= 8:
        assert token not in text
    for part in token.split("."):
        if len(part) >= 8:
            assert part not in text


# --- accepted -----------------------------------------------------------------------------------


async def test_a_valid_token_yields_the_principal_of_its_subject(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, sub="user_2abcDEF")

    principal = await verifier.verify(token)

    assert principal == Principal(UserId("user_2abcDEF"))


async def test_a_token_expired_by_less_than_the_leeway_is_accepted(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, exp=int(time.time()) - 2)

    principal = await verifier.verify(token)

    assert principal.user_id.startswith("user_")


async def test_a_token_valid_in_less_than_the_leeway_is_accepted(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, nbf=int(time.time()) + 2)

    principal = await verifier.verify(token)

    assert principal.user_id.startswith("user_")


async def test_without_configured_authorized_parties_azp_is_not_checked(
    make_verifier: MakeVerifier, key: SigningKey
) -> None:
    verifier = make_verifier(authorized_parties=None)
    token = mint_token(key, azp=None)

    principal = await verifier.verify(token)

    assert principal.user_id.startswith("user_")


@pytest.mark.parametrize("aud", ["flowbuilder", ["third-party", "flowbuilder"]])
async def test_a_token_whose_aud_names_a_configured_audience_is_accepted(
    make_verifier: MakeVerifier, key: SigningKey, aud: str | list[str]
) -> None:
    verifier = make_verifier(audience=frozenset({"flowbuilder", "flowbuilder-admin"}))

    principal = await verifier.verify(mint_token(key, sub="user_aud", aud=aud))

    assert principal == Principal(UserId("user_aud"))


async def test_configured_headers_are_sent_to_the_jwks_endpoint(
    make_verifier: MakeVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    verifier = make_verifier(headers={"Authorization": "Bearer sk_test_secret"})

    await verifier.verify(mint_token(key))

    assert jwks.last_headers["authorization"] == "Bearer sk_test_secret"


async def test_keys_are_fetched_once_and_reused_from_the_cache(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    for _ in range(5):
        await verifier.verify(mint_token(key))

    assert jwks.fetches == 1


async def test_concurrent_first_verifications_share_one_fetch(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    tokens = [mint_token(key) for _ in range(20)]

    await asyncio.gather(*(verifier.verify(token) for token in tokens))

    assert jwks.fetches == 1


async def test_keys_older_than_the_refresh_interval_are_refetched(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    clock.advance(REFRESH_S + 1)

    await verifier.verify(mint_token(key))

    assert jwks.fetches == 2


async def test_entries_that_are_not_rsa_signing_keys_are_ignored(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    ec_key = {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"}
    encryption_key = make_rsa_key("enc").jwk(use="enc")
    jwks.serve_document({"keys": [ec_key, encryption_key, {"kid": "junk"}, key.jwk()]})

    principal = await verifier.verify(mint_token(key))

    assert principal.user_id.startswith("user_")
    await rejected(verifier, mint_token(make_rsa_key("enc")))


# --- rejected: algorithm and signature -----------------------------------------------------------


async def test_an_unsigned_token_with_alg_none_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, algorithm="none")

    error = await rejected(verifier, token)

    assert "algorithm" in error.detail


async def test_a_token_signed_with_hs256_using_the_public_key_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, algorithm="HS256")

    await rejected(verifier, token)


async def test_a_token_signed_with_hs256_claiming_rs256_in_its_header_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    forged = mint_token(key, algorithm="HS256", headers={"alg": "RS256"})

    await rejected(verifier, forged)


async def test_a_token_signed_with_rs384_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, algorithm="RS384")

    await rejected(verifier, token)


async def test_a_token_with_a_tampered_payload_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    header, _, signature = mint_token(key, sub="user_alice").split(".")
    _, payload, _ = mint_token(key, sub="user_mallory").split(".")

    error = await rejected(verifier, f"{header}.{payload}.{signature}")

    assert "signature" in error.detail


async def test_a_token_signed_by_another_key_under_a_known_kid_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    impostor = make_rsa_key(key.kid)

    error = await rejected(verifier, mint_token(impostor))

    assert "signature" in error.detail


async def test_a_token_whose_header_embeds_its_own_key_is_not_trusted(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    attacker = make_rsa_key("attacker")
    token = mint_token(attacker, headers={"kid": key.kid, "jwk": attacker.jwk()})

    await rejected(verifier, token)


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20_000, "....", "é.é.é"],
)
async def test_a_garbage_token_is_rejected(verifier: ClerkTokenVerifier, garbage: str) -> None:
    await rejected(verifier, garbage)


async def test_a_token_without_kid_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, headers={"kid": None})

    error = await rejected(verifier, token)

    assert "kid" in error.detail


# --- rejected: claims --------------------------------------------------------------------------


async def test_an_expired_token_is_rejected(verifier: ClerkTokenVerifier, key: SigningKey) -> None:
    token = mint_token(key, exp=int(time.time()) - 60)

    error = await rejected(verifier, token)

    assert "expired" in error.detail


async def test_a_token_not_yet_valid_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, nbf=int(time.time()) + 60)

    error = await rejected(verifier, token)

    assert "not valid yet" in error.detail


@pytest.mark.parametrize("claim", ["exp", "nbf", "sub", "sid", "iss"])
async def test_a_token_missing_a_required_claim_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey, claim: str
) -> None:
    dropped: dict[str, Any] = {claim: None}
    token = mint_token(key, **dropped)

    error = await rejected(verifier, token)

    assert claim in error.detail


async def test_a_token_with_an_empty_session_id_is_not_a_session_and_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, sid="")

    error = await rejected(verifier, token)

    assert "sid" in error.detail


@pytest.mark.parametrize("aud", ["https://third-party.example", ["a", "b"], [], 42])
async def test_a_token_carrying_aud_is_rejected_when_no_audience_is_configured(
    verifier: ClerkTokenVerifier, key: SigningKey, aud: object
) -> None:
    token = mint_token(key, aud=aud)

    error = await rejected(verifier, token)

    assert "aud" in error.detail


@pytest.mark.parametrize("aud", ["third-party", ["third-party", "other"], [], [42], {"x": 1}])
async def test_a_token_whose_aud_names_no_configured_audience_is_rejected(
    make_verifier: MakeVerifier, key: SigningKey, aud: object
) -> None:
    verifier = make_verifier(audience=frozenset({"flowbuilder"}))

    error = await rejected(verifier, mint_token(key, aud=aud))

    assert "aud" in error.detail


async def test_a_token_with_an_empty_subject_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, sub="")

    await rejected(verifier, token)


async def test_a_token_from_another_issuer_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, iss="https://clerk.someone-else.example")

    error = await rejected(verifier, token)

    assert "issuer" in error.detail


async def test_a_token_without_issuer_is_rejected_when_an_issuer_is_configured(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, iss=None)

    await rejected(verifier, token)


async def test_a_token_for_a_foreign_authorized_party_is_rejected(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, azp="https://evil.example")

    error = await rejected(verifier, token)

    assert "azp" in error.detail


async def test_a_token_without_azp_is_rejected_when_authorized_parties_are_configured(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, azp=None)

    error = await rejected(verifier, token)

    assert "azp" in error.detail


# --- unknown kids and rotation ------------------------------------------------------------------


async def test_a_flood_of_unknown_kids_costs_one_refetch(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    clock.advance(COOLDOWN_S + 1)
    flood = [mint_token(key, headers={"kid": f"random-{n}"}) for n in range(50)]

    results = await asyncio.gather(
        *(verifier.verify(token) for token in flood), return_exceptions=True
    )

    assert all(isinstance(result, UnauthenticatedError) for result in results)
    assert jwks.fetches == 2


async def test_an_unknown_kid_right_after_a_fetch_does_not_refetch(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    await verifier.verify(mint_token(key))

    await rejected(verifier, mint_token(key, headers={"kid": "unknown"}))

    assert jwks.fetches == 1


async def test_a_rotated_in_key_is_accepted_after_the_refetch(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    new_key = make_rsa_key("ins_rotated")
    jwks.serve(new_key, key)
    clock.advance(COOLDOWN_S + 1)

    principal = await verifier.verify(mint_token(new_key, sub="user_rotated"))

    assert principal.user_id == "user_rotated"
    assert (await verifier.verify(mint_token(key))).user_id.startswith("user_")
    assert jwks.fetches == 2


async def test_a_key_no_longer_served_stops_verifying_after_a_refetch(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    new_key = make_rsa_key("ins_successor")
    jwks.serve(new_key)
    clock.advance(COOLDOWN_S + 1)
    await verifier.verify(mint_token(new_key))

    error = await rejected(verifier, mint_token(key))

    assert "kid" in error.detail


async def test_a_key_still_cached_keeps_verifying_until_the_next_refresh(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    jwks.serve(make_rsa_key("ins_successor"))
    clock.advance(REFRESH_S - 1)

    principal = await verifier.verify(mint_token(key))

    assert principal.user_id.startswith("user_")
    assert jwks.fetches == 1


# --- the endpoint failing -----------------------------------------------------------------------


async def test_cached_keys_keep_verifying_while_the_endpoint_fails(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    jwks.fail(500)
    clock.advance(REFRESH_S + 1)

    principal = await verifier.verify(mint_token(key))

    assert principal.user_id.startswith("user_")
    assert jwks.fetches == 2


async def test_cached_keys_keep_verifying_while_the_endpoint_is_unreachable(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    jwks.stop()
    clock.advance(REFRESH_S + 1)

    principal = await verifier.verify(mint_token(key))

    assert principal.user_id.startswith("user_")


async def test_a_failing_refresh_is_retried_at_most_once_per_cooldown(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    jwks.fail(503)
    clock.advance(REFRESH_S + 1)

    for _ in range(10):
        await verifier.verify(mint_token(key))
    clock.advance(COOLDOWN_S + 1)
    await verifier.verify(mint_token(key))

    assert jwks.fetches == 3


async def test_nothing_cached_and_the_endpoint_failing_is_dependency_unavailable(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    jwks.fail(500)
    token = mint_token(key)

    with pytest.raises(DependencyUnavailableError) as caught:
        await verifier.verify(token)

    assert_does_not_leak(caught.value, token)


async def test_nothing_cached_and_the_endpoint_unreachable_is_dependency_unavailable(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    jwks.stop()

    with pytest.raises(DependencyUnavailableError):
        await verifier.verify(mint_token(key))


async def test_an_endpoint_serving_no_usable_key_is_dependency_unavailable(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey
) -> None:
    jwks.serve_document({"keys": [{"kty": "oct", "kid": "x", "k": "c2VjcmV0"}]})

    with pytest.raises(DependencyUnavailableError):
        await verifier.verify(mint_token(key))


async def test_an_unknown_kid_while_the_endpoint_fails_with_keys_cached_is_unauthenticated(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    await verifier.verify(mint_token(key))
    jwks.fail(500)
    clock.advance(COOLDOWN_S + 1)

    await rejected(verifier, mint_token(make_rsa_key("ins_unknown")))

    assert jwks.fetches == 2


async def test_the_verifier_recovers_once_the_endpoint_answers_again(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    jwks.fail(500)
    with pytest.raises(DependencyUnavailableError):
        await verifier.verify(mint_token(key))
    jwks.recover()
    clock.advance(COOLDOWN_S + 1)

    principal = await verifier.verify(mint_token(key))

    assert principal.user_id.startswith("user_")


# --- remembered verifications -------------------------------------------------------------------


async def test_a_verified_token_is_remembered_until_it_expires(
    make_verifier: MakeVerifier, key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [time.time()]
    verifier = make_verifier(wall_clock=lambda: now[0])
    token = mint_token(key, sub="user_cached", now=int(now[0]), exp=int(now[0]) + 60)
    await verifier.verify(token)
    decoded: list[str] = []
    real_decode = clerk.decode_session_claims

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append("decoded")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(clerk, "decode_session_claims", counting_decode)

    again = await verifier.verify(token)
    now[0] += 60 + 5 + 1  # past exp and its leeway: the token is checked afresh
    await verifier.verify(token)

    assert again == Principal(UserId("user_cached"))
    assert decoded == ["decoded"]


async def test_a_remembered_token_dies_when_its_kid_leaves_a_refetched_jwks(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    token = mint_token(key)
    await verifier.verify(token)
    successor = make_rsa_key("ins_successor")
    jwks.serve(successor)
    clock.advance(COOLDOWN_S + 1)
    await verifier.verify(mint_token(successor))  # an unknown kid: the set is refetched

    error = await rejected(verifier, token)

    assert "kid" in error.detail
    assert jwks.fetches == 2


async def test_a_remembered_token_is_checked_again_once_the_key_set_is_due_for_refresh(
    verifier: ClerkTokenVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    token = mint_token(key)
    await verifier.verify(token)
    jwks.serve(make_rsa_key("ins_successor"))
    clock.advance(REFRESH_S + 1)

    error = await rejected(verifier, token)

    assert "kid" in error.detail
    assert jwks.fetches == 2


async def test_a_rejected_token_is_never_remembered(
    verifier: ClerkTokenVerifier, key: SigningKey
) -> None:
    token = mint_token(key, sub="user_x", azp="https://evil.test")

    first = await rejected(verifier, token)
    second = await rejected(verifier, token)

    assert first.detail == second.detail


# --- metrics --------------------------------------------------------------------------------


def fetches_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("flowbuilder_jwks_fetches_total", {"outcome": outcome}) or 0.0


async def test_every_fetch_of_the_keys_is_counted_with_its_outcome(
    make_verifier: MakeVerifier, jwks: JwksServer, key: SigningKey, clock: FakeClock
) -> None:
    verifier = make_verifier(on_fetch=observe_jwks_fetch)
    ok, error = fetches_counted("ok"), fetches_counted("error")

    await verifier.verify(mint_token(key))
    jwks.fail(500)
    clock.advance(REFRESH_S + 1)
    await verifier.verify(mint_token(key))

    assert jwks.fetches == 2
    assert (fetches_counted("ok"), fetches_counted("error")) == (ok + 1, error + 1)
