"""Liveness: ``GET /ping`` answers ``pong``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["system"])


@router.get("/ping", response_class=PlainTextResponse)
def ping() -> str:
    """Answer ``pong`` without touching the database."""
    return "pong"
