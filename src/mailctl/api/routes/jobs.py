"""Background jobs: their state and last message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mailctl.api.bodies import JobState
from mailctl.api.deps import ActorDep, ContextDep
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.services import jobs, scope
from mailctl.services.jobs import JobView

router = APIRouter(tags=["jobs"], route_class=JSONRoute)


def job_json(view: JobView) -> dict[str, Any]:
    """A job as the API shows it."""
    return {
        "id": view.id,
        "kind": view.kind,
        "target": view.target,
        "state": view.state,
        "message": view.message,
        "created_at": view.created_at.isoformat(),
        "updated_at": view.updated_at.isoformat(),
    }


@router.get("/jobs/{job_id}", **answers(JobState, 401, 404, 503))
def get_job(job_id: str, ctx: ContextDep, _actor: ActorDep) -> dict[str, Any]:
    """A job's state (pending, running, succeeded, failed) and its last message."""
    scope.require_superadmin(_actor, "follow the host's jobs")
    return {"result": True, "job": job_json(jobs.get_job(ctx, job_id))}
