"""Password hashing, the verification cache, Digest secrets and app passwords."""

from __future__ import annotations

import pytest

from davserver.auth.domain import REALM, account_secrets
from davserver.auth.passwords import (
    VerifiedCache,
    app_password_key,
    digest_ha1,
    generate_app_password,
    generate_password,
    hash_password,
    verify_password,
)
from providers.catalog import DigestSecret


def test_hash_and_verify() -> None:
    stored = hash_password("s3cret")
    assert verify_password(stored, "s3cret")
    assert not verify_password(stored, "wrong")
    assert not verify_password(None, "s3cret")


def test_cache_accepts_only_the_right_password_for_the_stored_hash() -> None:
    cache = VerifiedCache()
    stored = hash_password("one")
    assert cache.verify("ann", stored, "one")
    assert cache.verify("ann", stored, "one")  # answered from the cache
    assert not cache.verify("ann", stored, "two")
    changed = hash_password("two")
    assert not cache.verify("ann", changed, "one")  # a new hash misses the cache
    assert cache.verify("ann", changed, "two")
    assert not cache.verify("nobody", None, "one")


def test_cache_entries_expire() -> None:
    cache = VerifiedCache(ttl=0.0)
    stored = hash_password("pw")
    assert cache.verify("bo", stored, "pw")
    assert not cache._cached(("bo", stored), cache._mac("pw"))


def test_digest_ha1_is_rfc_7616_md5() -> None:
    # RFC 2617 section 3.5's example: Mufasa / testrealm@host.com / Circle Of Life.
    assert digest_ha1("Mufasa", "testrealm@host.com", "Circle Of Life") == (
        "939e7578ed9e3c518a452acee763bce9"
    )


def test_app_passwords_have_a_key_id_and_a_recognisable_shape() -> None:
    seen = set()
    for _ in range(50):
        key, password = generate_app_password()
        assert app_password_key(password) == key and password.startswith(key + "-")
        assert len(password) == 29
        seen.add(password)
    assert len(seen) == 50
    for other in (
        "s3cret",
        "abcde-fghij",
        "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY",
        "abcde-fghij-klmno-pqrst-uvwx1",
    ):
        assert app_password_key(other) is None


def test_account_secrets() -> None:
    stored, digest = account_secrets("bob", "pw", digest=True)
    assert verify_password(stored, "pw")
    assert digest == DigestSecret(REALM, digest_ha1("bob", REALM, "pw"))
    assert account_secrets("bob", "pw", digest=False)[1] is None
    _key, app_shaped = generate_app_password()
    with pytest.raises(ValueError, match="app password"):
        account_secrets("bob", app_shaped, digest=True)


def test_generated_passwords_are_letters_and_digits_never_an_option() -> None:
    """`rclone obscure PASS` and other commands read a leading '-' as an option."""
    generated = {generate_password() for _ in range(5000)}
    assert len(generated) == 5000
    for password in generated:
        assert len(password) == 16 and password.isascii() and password.isalnum()
