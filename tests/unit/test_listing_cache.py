"""The per-process cache of listing bodies: one revision at a time, bounded, LRU."""

from __future__ import annotations

from mailctl.services.listings import ListingCache


class Builds:
    """Bodies made on demand, counted."""

    def __init__(self) -> None:
        self.count = 0

    def body(self, text: str) -> bytes:
        self.count += 1
        return text.encode()


def test_a_body_is_kept_for_its_key_at_its_revision() -> None:
    """The same key at the same revision is built once; another key is its own body."""
    cache = ListingCache(1024)
    builds = Builds()
    assert cache.through(1, "a", lambda: builds.body("A")) == b"A"
    assert cache.through(1, "a", lambda: builds.body("changed")) == b"A"
    assert cache.through(1, "b", lambda: builds.body("B")) == b"B"
    assert builds.count == 2
    assert (len(cache), cache.bytes) == (2, 2)


def test_another_revision_empties_it_either_way() -> None:
    """A newer revision, or an older one (a database restored from a copy), is built anew
    and the bodies of the other revision are dropped."""
    cache = ListingCache(1024)
    cache.through(5, "a", lambda: b"five")
    cache.through(5, "b", lambda: b"five")
    assert cache.through(6, "a", lambda: b"six") == b"six"
    assert len(cache) == 1
    assert cache.through(3, "a", lambda: b"three") == b"three"
    assert cache.through(3, "a", lambda: b"other") == b"three"


def test_without_a_revision_or_a_budget_nothing_is_kept() -> None:
    """No counter to read (None), or a budget of 0 bytes: every call builds."""
    builds = Builds()
    for cache, revision in ((ListingCache(1024), None), (ListingCache(0), 1)):
        cache.through(revision, "a", lambda: builds.body("A"))
        cache.through(revision, "a", lambda: builds.body("A"))
        assert len(cache) == 0
    assert builds.count == 4


def test_the_least_recently_used_goes_first() -> None:
    """Past ``max_entries``, the body asked for longest ago is dropped."""
    cache = ListingCache(1024, max_entries=2)
    cache.through(1, "a", lambda: b"A")
    cache.through(1, "b", lambda: b"B")
    cache.through(1, "a", lambda: b"not built")  # a is now the most recent
    cache.through(1, "c", lambda: b"C")
    assert len(cache) == 2
    assert cache.through(1, "a", lambda: b"not built") == b"A"
    assert cache.through(1, "b", lambda: b"built again") == b"built again"


def test_the_bytes_are_bounded() -> None:
    """The bodies kept never add up past ``max_bytes``; one larger than that is not kept."""
    cache = ListingCache(10)
    cache.through(1, "a", lambda: b"12345")
    cache.through(1, "b", lambda: b"12345")
    cache.through(1, "c", lambda: b"123")
    assert cache.bytes <= 10
    assert len(cache) == 2
    assert cache.through(1, "big", lambda: b"x" * 11) == b"x" * 11
    assert cache.through(1, "big", lambda: b"built again") == b"built again"
    assert cache.bytes <= 10


def test_a_body_built_while_another_request_saw_a_newer_revision_is_not_kept() -> None:
    """A request that read the revision before a write and its listing after may hold a
    body of either state: once another request has seen the newer revision, it is not
    kept under the older one, nor does it displace the newer bodies."""
    cache = ListingCache(1024)

    def slow_build() -> bytes:
        cache.through(2, "b", lambda: b"two")  # another request, meanwhile
        return b"one or two"

    assert cache.through(1, "a", slow_build) == b"one or two"
    assert cache.through(2, "a", lambda: b"two") == b"two"
    assert cache.through(2, "b", lambda: b"not built") == b"two"
