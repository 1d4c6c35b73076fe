"""Users of the web tool: add one, check a password, log in and out, and the first-run admin.

Passwords are hashed with argon2 (argon2-cffi's `PasswordHasher`, its recommended parameters)
and never stored or logged; a password masklet generates is shown once, to whoever asked
for it. A login is a random token (`secrets.token_urlsafe(32)`) handed to the client; the
database keeps only its sha256, so a copy of the database opens no session.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from masklet.engine.records import User
from masklet.engine.schema import utc_now
from masklet.engine.store import DuplicateError, Store
from masklet.engine.vocabulary import Role, TokenKind
from masklet.errors import MaskletError, NotFoundError

__all__ = [
    "ADMIN_PASSWORD_ENV",
    "MIN_PASSWORD_LENGTH",
    "SESSION_LIFETIME",
    "AuthError",
    "NewUser",
    "add_user",
    "authenticate",
    "ensure_first_admin",
    "log_in",
    "log_out",
    "user_for_token",
]

ADMIN_PASSWORD_ENV = "MASKLET_ADMIN_PASSWORD"
MIN_PASSWORD_LENGTH = 8
SESSION_LIFETIME = timedelta(days=7)
_GENERATED_BYTES = 12  # 16 URL-safe characters


class AuthError(MaskletError):
    """A wrong name or password, or a token that logs no one in."""


@dataclass(frozen=True, slots=True)
class NewUser:
    user: User
    generated_password: str | None  # set when masklet chose the password: show it once


def _hasher():  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    return PasswordHasher()


def _check_password(password: str) -> None:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise MaskletError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def add_user(store: Store, name: str, role: Role | str, *, password: str | None = None, by: str) -> NewUser:
    """A new user with `password`, or with a generated one (returned once in `generated_password`)."""
    try:
        role = Role(role)
    except ValueError:
        raise MaskletError(f"role must be one of {', '.join(Role)}, got {role!r}") from None
    generated = None
    if password is None:
        password = generated = secrets.token_urlsafe(_GENERATED_BYTES)
    _check_password(password)
    user = store.create_user(name, role=role, password_hash=_hasher().hash(password), by=by)
    return NewUser(user, generated)


def authenticate(store: Store, name: str, password: str) -> User:
    """The user whose name and password these are; AuthError (one message for both cases) otherwise."""
    from argon2.exceptions import VerificationError

    try:
        stored = store.password_hash(name)
    except NotFoundError:
        _hasher().hash(password)  # the same work as a real check: no timing hint that the name is unknown
        raise AuthError("wrong user name or password") from None
    hasher = _hasher()
    try:
        hasher.verify(stored, password)
    except VerificationError:
        raise AuthError("wrong user name or password") from None
    if hasher.check_needs_rehash(stored):
        store.set_password_hash(name, hasher.hash(password), by=name)
    return store.get_user(name)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log_in(store: Store, user: User, kind: TokenKind | str = TokenKind.SESSION) -> str:
    """A new token for `user`: a session (expires after SESSION_LIFETIME) or an API token (until logged out)."""
    kind = TokenKind(kind)
    token = secrets.token_urlsafe(32)
    expires: datetime | None = utc_now() + SESSION_LIFETIME if kind is TokenKind.SESSION else None
    store.add_token(user.name, _digest(token), kind=kind, expires_at=expires)
    return token


def user_for_token(store: Store, token: str) -> User | None:
    if not token or len(token) > 200:
        return None
    return store.user_for_token(_digest(token))


def log_out(store: Store, token: str) -> bool:
    """End the login of `token`; False if there was none."""
    return store.delete_token(_digest(token))


def ensure_first_admin(store: Store, password: str | None = None) -> NewUser | None:
    """On a database without users, add the admin `admin` (with `password`, else a generated one).

    Returns None when there are users already. There is no default password: a generated one
    is returned once, for the caller to show.
    """
    if store.count_users():
        return None
    try:
        return add_user(store, "admin", Role.ADMIN, password=password, by="first run")
    except DuplicateError:
        return None  # another worker on this database added it a moment ago
