"""Mailbox settings rows (forwarding, auto-reply) and the tokens of mailbox owners."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import MailboxAutoreply, MailboxForwarding, MailboxToken, User

# One mailbox's settings as reconcile renders them: email, forwarding destinations (one
# per line, "" for none), keep a copy ("1"/"0"), auto-reply on ("1"/"0"), subject, body,
# first day, last day (ISO dates or "").
SieveRow = tuple[str, str, str, str, str, str, str, str]


class MailboxSettings:
    """Queries on ``mailbox_forwarding`` and ``mailbox_autoreply``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def forwarding(self, user_id: int) -> MailboxForwarding | None:
        return self.session.get(MailboxForwarding, user_id)

    def autoreply(self, user_id: int) -> MailboxAutoreply | None:
        return self.session.get(MailboxAutoreply, user_id)

    def add(self, row: MailboxForwarding | MailboxAutoreply) -> None:
        self.session.add(row)
        self.session.flush()

    def remove_forwarding(self, user_id: int) -> bool:
        result = self.session.execute(
            delete(MailboxForwarding).where(MailboxForwarding.user_id == user_id),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result) > 0

    def has_any(self, user_id: int) -> bool:
        """Whether the mailbox has a setting its Sieve script is rendered from."""
        return self.forwarding(user_id) is not None or self.autoreply(user_id) is not None

    def forwarding_by_email(self, emails: Sequence[str]) -> dict[str, list[str]]:
        """The forwarding destinations of the local mailboxes among ``emails``."""
        if not emails:
            return {}
        query = (
            select(User.email, MailboxForwarding.destinations)
            .join(MailboxForwarding, MailboxForwarding.user_id == User.id)
            .where(User.email.in_(sorted(set(emails))))
        )
        return {email: dests.split("\n") for email, dests in self.session.execute(query)}

    def sieve_rows(self) -> list[SieveRow]:
        """Every mailbox with forwarding or an enabled auto-reply, by address."""
        forwards = {
            email: (dests, keep)
            for email, dests, keep in self.session.execute(
                select(
                    User.email, MailboxForwarding.destinations, MailboxForwarding.keep_copy
                ).join(MailboxForwarding, MailboxForwarding.user_id == User.id)
            )
        }
        replies = {
            row[0]: row[1:]
            for row in self.session.execute(
                select(
                    User.email,
                    MailboxAutoreply.subject,
                    MailboxAutoreply.body,
                    MailboxAutoreply.starts_on,
                    MailboxAutoreply.ends_on,
                )
                .join(MailboxAutoreply, MailboxAutoreply.user_id == User.id)
                .where(MailboxAutoreply.enabled.is_(True))
            )
        }
        rows: list[SieveRow] = []
        for email in sorted(forwards.keys() | replies.keys()):
            dests, keep = forwards.get(email, ("", False))
            reply = replies.get(email)
            if reply is None:
                rows.append((email, dests, "1" if keep else "0", "0", "", "", "", ""))
                continue
            subject, body, starts, ends = reply
            rows.append(
                (
                    email,
                    dests,
                    "1" if keep else "0",
                    "1",
                    subject,
                    body,
                    starts.isoformat() if starts else "",
                    ends.isoformat() if ends else "",
                )
            )
        return rows


class MailboxTokens:
    """Queries on ``mailbox_tokens``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: MailboxToken) -> None:
        self.session.add(token)
        self.session.flush()

    def with_user(self, jti: str) -> tuple[MailboxToken, User] | None:
        """A token's row and its mailbox, by primary key and join: one indexed look-up."""
        query = (
            select(MailboxToken, User)
            .join(User, User.id == MailboxToken.user_id)
            .where(MailboxToken.jti == jti)
        )
        found = self.session.execute(query).one_or_none()
        return None if found is None else (found[0], found[1])

    def revoke(self, jti: str, now: float, reason: str) -> bool:
        result = self.session.execute(
            update(MailboxToken)
            .where(MailboxToken.jti == jti, MailboxToken.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result) == 1

    def revoke_all(self, user_id: int, now: float, reason: str) -> int:
        """Mark every unrevoked, unexpired token of the mailbox revoked; how many were."""
        result = self.session.execute(
            update(MailboxToken)
            .where(
                MailboxToken.user_id == user_id,
                MailboxToken.revoked_at.is_(None),
                MailboxToken.expires_at > now,
            )
            .values(revoked_at=now, revoked_reason=reason),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result)

    def prune(self, before: float) -> int:
        result = self.session.execute(
            delete(MailboxToken).where(MailboxToken.expires_at < before),
            execution_options={"synchronize_session": False},
        )
        return _rowcount(result)


def _rowcount(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0
