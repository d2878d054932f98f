"""JSON shapes shared by several routes."""

from __future__ import annotations

from typing import Any

from mailctl.services.reconcile import ReconcileOutcome


def reload_json(outcome: ReconcileOutcome) -> dict[str, Any]:
    """What reconcile did on this host, and what failed."""
    report = outcome.report
    return {
        "ok": outcome.ok,
        "written": report.written,
        "deleted": report.deleted,
        "reloaded": report.reloaded,
        "not_running": report.not_running,
        "failures": [
            {"daemon": f.daemon, "status": f.status, "detail": f.detail} for f in report.failures
        ],
        "error": outcome.error,
    }
