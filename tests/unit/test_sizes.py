"""Sizes and counts as a quota or a limit is given: bytes, suffixes, unlimited, refusals."""

from __future__ import annotations

import pytest

from mailctl.domain.sizes import MAX_SIZE, parse_count, parse_size, shown_size
from mailctl.errors import InvalidInputError


@pytest.mark.parametrize(
    ("given", "size"),
    [
        ("0", 0),
        ("unlimited", 0),
        (" None ", 0),
        ("1", 1),
        (2048, 2048),
        ("500K", 500 * 1024),
        ("10M", 10 * 1024**2),
        ("10m", 10 * 1024**2),
        ("10MB", 10 * 1024**2),
        ("10 MiB", 10 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1T", 1024**4),
        ("1024T", MAX_SIZE),
    ],
)
def test_sizes_are_read_in_binary_multiples(given: object, size: int) -> None:
    assert parse_size(given) == size


@pytest.mark.parametrize(
    "given", ["", "ten", "-1", "1.5G", "10X", "G", "1025T", "٣M", "1e9", None, True, 1.5, []]
)
def test_anything_else_is_refused_with_a_clear_message(given: object) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_size(given)
    assert "quota" in refused.value.message


@pytest.mark.parametrize(("given", "count"), [("0", 0), ("none", 0), ("12", 12), (7, 7)])
def test_counts(given: object, count: int) -> None:
    assert parse_count(given, "message count") == count


@pytest.mark.parametrize("given", ["-1", "1.0", "x", "99999999999999", -3, None, False])
def test_bad_counts_are_refused(given: object) -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse_count(given, "message count")
    assert "message count" in refused.value.message


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "unlimited"),
        (0, "unlimited"),
        (512, "512 B"),
        (1536, "1.5 KiB"),
        (10 * 1024**2, "10 MiB"),
    ],
)
def test_sizes_are_shown_for_people(size: int | None, shown: str) -> None:
    assert shown_size(size) == shown
