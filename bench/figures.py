"""One measured figure of the benchmark, beside the raw limit it is judged against."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Figure:
    """A figure of one section, e.g. ``Figure("api", "GET /domains, 32 conn.", 1250, "req/s")``.

    ``limit_name``/``limit_value`` name the raw limit measured in the same run (the
    driver's own query, raw hashing, ``tar -czf``), ``ratio`` relates the figure to it as
    the target is phrased, ``target`` says the goal in words (``">= 1000 req/s"``), and
    ``met`` whether this run reached it (None where there is no target).
    """

    section: str
    name: str
    value: float
    unit: str
    limit_name: str | None = None
    limit_value: float | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)
