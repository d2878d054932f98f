"""HTTP-01 answers for ACME servers, served by every replica from the database."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from mailctl.api.deps import ContextDep
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.services import certificates

router = APIRouter(tags=["acme"], route_class=JSONRoute)


@router.get(
    "/.well-known/acme-challenge/{token}",
    response_class=PlainTextResponse,
    **answers({"text/plain": {"schema": {"type": "string"}}}, 404, 503),
)
def acme_challenge(token: str, ctx: ContextDep) -> PlainTextResponse:
    """The key authorization of a pending challenge, as text; 404 for any other token.

    No token is needed: the ACME server fetches this anonymously, and the answer is
    public by design.
    """
    return PlainTextResponse(certificates.challenge_answer(ctx, token))
