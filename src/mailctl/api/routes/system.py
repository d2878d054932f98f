"""Liveness: ``GET /ping`` answers ``pong``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from mailctl.api.openapi import answers

router = APIRouter(tags=["system"])


@router.get(
    "/ping",
    response_class=PlainTextResponse,
    **answers({"text/plain": {"schema": {"type": "string", "const": "pong"}}}),
)
def ping() -> str:
    """Answer ``pong`` without touching the database."""
    return "pong"
