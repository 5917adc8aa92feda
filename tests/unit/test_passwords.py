"""Password hashing and the verification cache."""

from __future__ import annotations

from davserver.passwords import VerifiedCache, hash_password, verify_password


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
