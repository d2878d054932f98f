"""Admin token rows: the one look-up each authenticated request makes, and revocation."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import Admin, AdminToken


class AdminTokens:
    """Queries on ``admin_tokens`` (and the token counter of ``admins``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: AdminToken) -> None:
        self.session.add(token)
        self.session.flush()

    def with_admin(self, jti: str) -> tuple[AdminToken, Admin] | None:
        """A token's row and its admin, by primary key and join: one indexed look-up."""
        query = (
            select(AdminToken, Admin)
            .join(Admin, Admin.id == AdminToken.admin_id)
            .where(AdminToken.jti == jti)
        )
        found = self.session.execute(query).one_or_none()
        return None if found is None else (found[0], found[1])

    def get(self, jti: str) -> AdminToken | None:
        return self.session.get(AdminToken, jti)

    def active(self, admin_id: int, generation: int, now: float) -> Sequence[AdminToken]:
        """The admin's tokens that would be accepted now, oldest first."""
        query = (
            select(AdminToken)
            .where(
                AdminToken.admin_id == admin_id,
                AdminToken.generation == generation,
                AdminToken.revoked_at.is_(None),
                AdminToken.expires_at > now,
            )
            .order_by(AdminToken.issued_at, AdminToken.jti)
        )
        return self.session.scalars(query).all()

    def revoke_all(self, admin_id: int, now: float, reason: str) -> int:
        """Mark every unrevoked, unexpired token of the admin revoked; how many were."""
        result = self.session.execute(
            update(AdminToken)
            .where(
                AdminToken.admin_id == admin_id,
                AdminToken.revoked_at.is_(None),
                AdminToken.expires_at > now,
            )
            .values(revoked_at=now, revoked_reason=reason),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result)

    def raise_generation(
        self, admin_id: int, password: str | None = None, *, replacing: str | None = None
    ) -> bool:
        """Invalidate every token of the admin, setting a new password hash if given.

        One UPDATE, so a login that checked the old password against the same row cannot
        slip a token in under the new generation. With ``replacing``, only if the stored
        hash is still that one (no other change came in between). False if nothing matched.
        """
        values: dict[str, object] = {"token_generation": Admin.token_generation + 1}
        if password is not None:
            values["password"] = password
        condition = Admin.id == admin_id
        if replacing is not None:
            condition = condition & (Admin.password == replacing)
        result = self.session.execute(
            update(Admin).where(condition).values(**values),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result) == 1

    def prune(self, before: float) -> int:
        """Forget tokens that expired before ``before``; they are refused for their expiry."""
        result = self.session.execute(
            delete(AdminToken).where(AdminToken.expires_at < before),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result)


def _rowcount(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
