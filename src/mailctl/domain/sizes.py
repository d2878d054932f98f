"""Reading and showing storage sizes: bytes, or a number with a K, M, G or T suffix."""

from __future__ import annotations

import re

from mailctl.errors import InvalidInputError

# Binary multiples, as Dovecot reads its own quota rules.
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"([0-9]{1,16})\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
# A quota larger than this (1 PiB) is a typing mistake, and fits every backend's BIGINT.
MAX_SIZE = 1024**5
MAX_COUNT = 10**12
_UNLIMITED = ("unlimited", "none")


def parse_size(value: object, what: str = "quota") -> int:
    """Bytes from ``123``, ``500K``, ``10M``, ``2G`` (or ``10MB``, ``10MiB``); 0 for
    ``0``, ``unlimited`` or ``none``. InvalidInputError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidInputError(f"The {what} must be a size such as 500M or 2G.")
    if text.lower() in _UNLIMITED:
        return 0
    match = _SIZE.fullmatch(text)
    if match is None:
        raise InvalidInputError(
            f"The {what} must be a number of bytes or a size such as 500K, 10M or 2G "
            "(0 or 'unlimited' for no limit)."
        )
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size > MAX_SIZE:
        raise InvalidInputError(f"The {what} is larger than {shown_size(MAX_SIZE)}.")
    return size


def parse_count(value: object, what: str) -> int:
    """A whole number ≥ 0 from ``value`` (0, ``unlimited`` or ``none``: no limit)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lower() in _UNLIMITED:
        return 0
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,13}", value.strip()):
        number = int(value.strip())
    else:
        raise InvalidInputError(f"The {what} must be a whole number (0 for no limit).")
    if not 0 <= number <= MAX_COUNT:
        raise InvalidInputError(f"The {what} must be between 0 and {MAX_COUNT}.")
    return number


def shown_size(size: int | None) -> str:
    """``size`` bytes for people: ``10 MiB``, ``1.5 GiB``, ``512 B``; unlimited for None/0."""
    if not size:
        return "unlimited"
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            amount = size / factor
            return f"{amount:.0f} {unit}" if amount == int(amount) else f"{amount:.1f} {unit}"
    return f"{size} B"
