"""`Store` methods for the web tool's users and their logins (session cookies, API tokens).

The store keeps what it is given: an argon2 hash (never a password) and a token's sha256
(never the token). Hashing and token generation are `engine.users`' job.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select

from masklet.engine.records import User, as_user
from masklet.engine.schema import ROLES, TOKEN_KINDS, TokenRow, UserRow, as_utc, utc_now
from masklet.engine.store_base import StoreMethods, add_event, add_row
from masklet.engine.store_checks import DuplicateError, check_text, one_of
from masklet.engine.vocabulary import EventAction
from masklet.errors import NotFoundError


class UserMethods(StoreMethods):
    def create_user(self, name: str, *, role: str, password_hash: str, by: str = "system") -> User:
        check_text(name, "user name")
        one_of(role, ROLES, "role")
        with self._write() as s:
            if s.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
                raise DuplicateError(f"a user named {name!r} already exists")
            row = UserRow(name=name, role=str(role), password_hash=password_hash, created_at=utc_now())
            add_row(s, row, f"user {name!r}")
            add_event(s, EventAction.USER_ADD, {"name": name, "role": str(role)}, by=by)
            return as_user(row)

    def get_user(self, name: str) -> User:
        with self._read() as s:
            return as_user(self._user_row(s, name))

    def password_hash(self, name: str) -> str:
        with self._read() as s:
            return self._user_row(s, name).password_hash

    def set_password_hash(self, name: str, password_hash: str, *, by: str) -> None:
        """Replace a user's password hash; every login of the user ends."""
        with self._write() as s:
            row = self._user_row(s, name)
            row.password_hash = password_hash
            s.execute(delete(TokenRow).where(TokenRow.user_id == row.id))
            add_event(s, EventAction.USER_PASSWORD, {"name": name}, by=by)

    def list_users(self) -> list[User]:
        with self._read() as s:
            return [as_user(r) for r in s.scalars(select(UserRow).order_by(UserRow.id))]

    def count_users(self) -> int:
        with self._read() as s:
            return int(s.scalar(select(func.count()).select_from(UserRow)) or 0)

    def add_token(self, name: str, digest: str, *, kind: str, expires_at: datetime | None) -> None:
        one_of(kind, TOKEN_KINDS, "token kind")
        with self._write() as s:
            user = self._user_row(s, name)
            row = TokenRow(
                user_id=user.id, digest=digest, kind=str(kind), created_at=utc_now(), expires_at=expires_at
            )
            add_row(s, row, "token")

    def user_for_token(self, digest: str, *, now: datetime | None = None) -> User | None:
        """The user a token digest logs in, or None (unknown or expired)."""
        now = utc_now() if now is None else as_utc(now)
        with self._read() as s:
            found = s.execute(
                select(UserRow, TokenRow.expires_at)
                .join(TokenRow, TokenRow.user_id == UserRow.id)
                .where(TokenRow.digest == digest)
            ).one_or_none()
            if found is None:
                return None
            user, expires_at = found
            if expires_at is not None and as_utc(expires_at) <= now:
                return None
            return as_user(user)

    def delete_token(self, digest: str) -> bool:
        with self._write() as s:
            return bool(s.execute(delete(TokenRow).where(TokenRow.digest == digest)).rowcount)

    @staticmethod
    def _user_row(session, name: str) -> UserRow:  # type: ignore[no-untyped-def]
        row = session.scalars(select(UserRow).where(UserRow.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"no user named {name!r}; add one with `masklet user add NAME --role ROLE`")
        return row
