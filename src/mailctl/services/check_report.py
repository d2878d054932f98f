"""What `mailctl check` reports: one verdict per check, and the whole in a stable shape."""

from __future__ import annotations

from dataclasses import dataclass, field

OK = "ok"
FAIL = "fail"
SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One verdict: a stable name, ok/fail/skip, what was seen, and what to do about it."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_json(self) -> dict[str, str]:
        """The documented JSON shape of one check."""
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class CheckReport:
    """Every check run on this host, in order."""

    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when no check failed (skipped ones do not count)."""
        return all(check.status != FAIL for check in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        """The checks that failed."""
        return tuple(check for check in self.checks if check.status == FAIL)

    def as_json(self) -> dict[str, object]:
        """``{"ok": bool, "checks": [{"name", "status", "detail", "fix"}, ...]}``."""
        return {"ok": self.ok, "checks": [check.as_json() for check in self.checks]}


class Verdicts:
    """Collects verdicts; ``strict`` makes a missing daemon or tool a failure, not a skip."""

    def __init__(self, strict: bool) -> None:
        # Strict: a stopped or missing daemon is a failure (`mailctl check`). Not strict:
        # only what a daemon would read is judged (setup, before the daemons restart).
        self.strict = strict
        self.results: list[CheckResult] = []

    def add(self, name: str, status: str, detail: str, fix: str = "") -> None:
        """Record one verdict."""
        self.results.append(CheckResult(name, status, detail, fix))

    def missing(self, name: str, what: str, fix: str) -> None:
        """Something needed is not there: a failure when strict, else a skip."""
        self.add(name, FAIL if self.strict else SKIP, what, fix if self.strict else "")

    def report(self) -> CheckReport:
        """Everything recorded, in order."""
        return CheckReport(tuple(self.results))
