"""Liveness: ``GET /ping`` answers ``pong``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute

router = APIRouter(tags=["system"], route_class=JSONRoute)


@router.get(
    "/ping",
    response_class=PlainTextResponse,
    **answers({"text/plain": {"schema": {"type": "string", "const": "pong"}}}),
)
async def ping() -> str:
    """Answer ``pong`` without touching the database."""
    return "pong"
