"""Queries on ``admin_totp``, ``admin_recovery_codes`` and ``app_settings``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import Admin, AdminRecoveryCode, AdminTotp, AppSetting


def _rowcount(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


class TwoFactor:
    """The admins' TOTP rows and recovery codes.

    A code is spent by a conditional UPDATE, so of two requests racing with the same
    code (or the same recovery code) exactly one sees its row change: on every backend,
    without holding a lock while the code is checked.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, admin_id: int) -> AdminTotp | None:
        return self.session.get(AdminTotp, admin_id)

    def start(self, admin_id: int, sealed: str, now: float) -> AdminTotp:
        """A new, unconfirmed enrolment in place of any earlier one (and its codes)."""
        self._remove_codes(admin_id)
        row = self.get(admin_id)
        if row is None:
            row = AdminTotp(admin_id=admin_id, secret=sealed, created_at=now)
            self.session.add(row)
        else:
            row.secret, row.created_at = sealed, now
            row.confirmed_at = row.last_step = None
        self.session.flush()
        return row

    def remove(self, admin_id: int) -> bool:
        """Forget an admin's TOTP secret and recovery codes; whether there was a secret."""
        self._remove_codes(admin_id)
        row = self.get(admin_id)
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        return True

    def _remove_codes(self, admin_id: int) -> None:
        self.session.execute(
            delete(AdminRecoveryCode).where(AdminRecoveryCode.admin_id == admin_id),
            execution_options={"synchronize_session": False},
        )

    def spend_step(self, admin_id: int, step: int) -> bool:
        """Record ``step`` as the latest one used, if it is later than the one recorded."""
        result = self.session.execute(
            update(AdminTotp)
            .where(AdminTotp.admin_id == admin_id)
            .where(AdminTotp.last_step.is_(None) | (AdminTotp.last_step < step))
            .values(last_step=step),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result) == 1

    def confirm(self, admin_id: int, step: int, now: float) -> bool:
        """Turn an unconfirmed enrolment on with the step of its first code."""
        result = self.session.execute(
            update(AdminTotp)
            .where(AdminTotp.admin_id == admin_id)
            .where(AdminTotp.confirmed_at.is_(None))
            .values(confirmed_at=now, last_step=step),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result) == 1

    def add_codes(self, admin_id: int, digests: Sequence[str]) -> None:
        self.session.add_all(AdminRecoveryCode(admin_id=admin_id, digest=d) for d in digests)
        self.session.flush()

    def recovery_codes(self, admin_id: int) -> Sequence[AdminRecoveryCode]:
        """Every recovery code of an admin, used ones included (so they are told apart)."""
        query = (
            select(AdminRecoveryCode)
            .where(AdminRecoveryCode.admin_id == admin_id)
            .order_by(AdminRecoveryCode.id)
        )
        return self.session.scalars(query).all()

    def codes_left(self, admin_id: int) -> int:
        query = (
            select(func.count(AdminRecoveryCode.id))
            .where(AdminRecoveryCode.admin_id == admin_id)
            .where(AdminRecoveryCode.used_at.is_(None))
        )
        return int(self.session.scalar(query) or 0)

    def spend_code(self, code_id: int, now: float) -> bool:
        """Mark a recovery code used, if it still is unused."""
        result = self.session.execute(
            update(AdminRecoveryCode)
            .where(AdminRecoveryCode.id == code_id)
            .where(AdminRecoveryCode.used_at.is_(None))
            .values(used_at=now),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result) == 1

    def without_second_factor(self) -> list[str]:
        """The enabled admins with no confirmed TOTP, by name."""
        confirmed = select(AdminTotp.admin_id).where(AdminTotp.confirmed_at.is_not(None))
        query = (
            select(Admin.username)
            .where(Admin.disabled.is_(False))
            .where(Admin.id.not_in(confirmed))
            .order_by(Admin.username)
        )
        return list(self.session.scalars(query))


class AppSettings:
    """Named settings in ``app_settings``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, name: str) -> str | None:
        row = self.session.get(AppSetting, name)
        return row.value if row else None

    def put(self, name: str, value: str) -> None:
        row = self.session.get(AppSetting, name)
        if row is None:
            self.session.add(AppSetting(name=name, value=value))
        else:
            row.value = value
        self.session.flush()
