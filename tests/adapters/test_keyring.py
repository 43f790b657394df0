"""The keyring of SECRETS_ENCRYPTION_KEY: its format, its errors (which never show a key), and
the key file of embedded mode."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from flowbuilder_adapters.secrets.keyring import Keyring, KeyringError


def make_key(byte: int = 1, length: int = 32) -> bytes:
    return bytes([byte]) * length


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_entries_keep_their_order_and_the_first_encrypts() -> None:
    text = f"new:{b64(make_key(1))}, old:{b64(make_key(2))},older:{b64(make_key(3))}"

    keyring = Keyring.parse(text)

    assert keyring.ids == ("new", "old", "older")
    assert keyring.primary_id == "new"
    assert "old" in keyring
    assert "gone" not in keyring
    assert keyring.cipher("gone") is None


def test_each_key_decrypts_what_it_encrypted() -> None:
    keyring = Keyring.parse(f"a:{b64(make_key(1))},b:{b64(make_key(2))}")
    a, b = keyring.cipher("a"), keyring.cipher("b")
    assert a is not None
    assert b is not None
    nonce = os.urandom(12)

    sealed = a.encrypt(nonce, b"value", None)

    assert a.decrypt(nonce, sealed, None) == b"value"
    assert b.encrypt(nonce, b"value", None) != sealed


def test_a_bare_key_gets_an_id_derived_from_it() -> None:
    key = make_key(7)

    keyring = Keyring.parse(b64(key))

    assert keyring.ids == ("k" + hashlib.sha256(key).hexdigest()[:12],)


def test_a_bare_key_keeps_its_id_behind_a_new_first_key() -> None:
    bare = b64(make_key(7))
    before = Keyring.parse(bare)

    after = Keyring.parse(f"new:{b64(make_key(8))},{bare}")

    assert after.ids == ("new", before.primary_id)
    assert Keyring.parse(f"  {bare}  ").ids == before.ids


def test_url_safe_base64_is_accepted() -> None:
    key = bytes(range(200, 232))  # encodes with + and / in the standard alphabet

    keyring = Keyring.parse("k1:" + base64.urlsafe_b64encode(key).decode())

    assert keyring.ids == ("k1",)


def test_repr_shows_key_ids_only() -> None:
    key = b64(make_key(9))

    text = repr(Keyring.parse(f"main:{key}"))

    assert text == "Keyring(ids=['main'])"
    assert key not in str(Keyring.parse(f"main:{key}"))


KEY = b64(make_key(5))
SHORT = b64(make_key(5, 31))
LONG = b64(make_key(5, 33))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("   ", "is empty", id="blank"),
        pytest.param(f"a:{KEY},", "entry 2: empty", id="trailing comma"),
        pytest.param(f",a:{KEY}", "entry 1: empty", id="leading comma"),
        pytest.param(
            f"a:{KEY},a:{b64(make_key(6))}",
            "entry 2: the same key id as entry 1",
            id="duplicate id",
        ),
        pytest.param(
            f"{KEY},{KEY}", "entry 2: the same key id as entry 1", id="duplicate bare key"
        ),
        pytest.param(f"a:{KEY[:-2]}", "entry 1: not 32 bytes of base64", id="truncated"),
        pytest.param(f"a:{KEY}!", "entry 1: not 32 bytes of base64", id="bad character"),
        pytest.param(
            f"a:{KEY[:10]} {KEY[10:]}", "entry 1: not 32 bytes of base64", id="inner space"
        ),
        pytest.param(f"a:{SHORT}", "entry 1: not 32 bytes of base64", id="31 bytes"),
        pytest.param(f"a:{LONG}", "entry 1: not 32 bytes of base64", id="33 bytes"),
        pytest.param(
            f"b:{KEY},{SHORT}", "entry 2: not 32 bytes of base64", id="bad bare second entry"
        ),
        pytest.param("a:", "entry 1: not 32 bytes of base64", id="no key"),
        pytest.param(f"a:é{KEY}", "entry 1: not 32 bytes of base64", id="non-ascii"),
        pytest.param(f":{KEY}", "entry 1: the key id must be", id="empty id"),
        pytest.param(f"has space:{KEY}", "entry 1: the key id must be", id="id with space"),
        pytest.param(f"a/b:{KEY}", "entry 1: the key id must be", id="id with slash"),
        pytest.param(f"{'x' * 65}:{KEY}", "entry 1: the key id must be", id="id too long"),
        pytest.param(f"{KEY}:{KEY}", "entry 1: the key id must be", id="key as id"),
    ],
)
def test_an_invalid_keyring_is_refused_without_showing_a_key(text: str, message: str) -> None:
    with pytest.raises(KeyringError) as caught:
        Keyring.parse(text)

    assert message in str(caught.value)
    assert KEY not in str(caught.value)
    assert KEY[:8] not in str(caught.value)
    assert SHORT[:8] not in str(caught.value)
    assert caught.value.__cause__ is None  # no decoder message quoting the input either
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_a_keyring_of_no_keys_cannot_be_built() -> None:
    with pytest.raises(KeyringError):
        Keyring([])


def test_a_generated_keyring_parses_back_from_its_text() -> None:
    keyring, text = Keyring.generate()

    again = Keyring.parse(text)

    assert again.ids == keyring.ids
    assert Keyring.generate()[1] != text


def test_load_or_create_writes_a_new_key_file_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / ".flowbuilder" / "secrets.key"

    keyring = Keyring.load_or_create(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Keyring.parse(path.read_text()).ids == keyring.ids
    assert list(path.parent.iterdir()) == [path]  # nothing left aside


def test_load_or_create_reuses_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    first = Keyring.load_or_create(path)
    text = path.read_text()

    second = Keyring.load_or_create(path)

    assert second.ids == first.ids
    assert path.read_text() == text


def test_load_or_create_keeps_a_key_file_written_by_an_operator(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    path.write_text(f"mine:{KEY}\n")
    path.chmod(0o600)

    keyring = Keyring.load_or_create(path)

    assert keyring.ids == ("mine",)


def test_load_or_create_refuses_a_broken_key_file_without_showing_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    path.write_text(f"mine:{SHORT}\n")

    with pytest.raises(KeyringError) as caught:
        Keyring.load_or_create(path)

    assert SHORT[:8] not in str(caught.value)
