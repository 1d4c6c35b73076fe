"""engine.users: argon2 hashes, tokens kept as digests, session expiry, the first-run admin."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from masklet.engine import users
from masklet.engine.schema import TokenRow, UserRow, utc_now
from masklet.engine.store import DuplicateError, Store
from masklet.errors import MaskletError


def _rows(store: Store, model, *columns: str) -> list[tuple]:
    with store._read() as s:  # the raw rows: what a copy of the database would show
        return [tuple(getattr(r, c) for c in columns) for r in s.scalars(select(model))]


def test_passwords_and_tokens_are_never_stored(store: Store) -> None:
    new = users.add_user(store, "ann", "annotator", password="correct horse", by="t")
    assert new.generated_password is None and new.user.role == "annotator"
    [(password_hash,)] = _rows(store, UserRow, "password_hash")
    assert password_hash.startswith("$argon2id$") and "correct horse" not in password_hash
    assert users.authenticate(store, "ann", "correct horse") == new.user
    for name, pw in (("ann", "wrong horse"), ("bob", "correct horse")):
        with pytest.raises(users.AuthError, match="^wrong user name or password$"):
            users.authenticate(store, name, pw)
    token = users.log_in(store, new.user)
    [(digest,)] = _rows(store, TokenRow, "digest")
    assert digest == hashlib.sha256(token.encode()).hexdigest() and token not in digest
    assert users.user_for_token(store, token) == new.user
    assert users.user_for_token(store, token + "x") is None and users.user_for_token(store, "") is None
    assert users.log_out(store, token) and users.user_for_token(store, token) is None
    assert not users.log_out(store, token)


def test_sessions_expire_api_tokens_do_not(store: Store) -> None:
    user = users.add_user(store, "rev", "reviewer", password="reviewer-pw", by="t").user
    session, api = users.log_in(store, user, "session"), users.log_in(store, user, "api")
    later = utc_now() + users.SESSION_LIFETIME + timedelta(seconds=1)
    digest = hashlib.sha256
    assert store.user_for_token(digest(session.encode()).hexdigest(), now=later) is None
    assert store.user_for_token(digest(api.encode()).hexdigest(), now=later) == user
    store.set_password_hash("rev", "$argon2id$x", by="admin")  # a new password ends every login
    assert users.user_for_token(store, api) is None


def test_bad_users(store: Store) -> None:
    with pytest.raises(MaskletError, match="role must be one of admin, annotator, reviewer"):
        users.add_user(store, "x", "boss", by="t")
    with pytest.raises(MaskletError, match="at least 8 characters"):
        users.add_user(store, "x", "admin", password="short", by="t")
    users.add_user(store, "x", "admin", password="long enough", by="t")
    with pytest.raises(DuplicateError, match="'x' already exists"):
        users.add_user(store, "x", "reviewer", password="long enough", by="t")


def test_first_admin_once_and_never_a_default_password(store: Store, tmp_path) -> None:
    first = users.ensure_first_admin(store)
    assert first is not None and first.user.name == "admin" and first.user.role == "admin"
    assert len(first.generated_password) >= 16
    assert users.authenticate(store, "admin", first.generated_password) == first.user
    assert users.ensure_first_admin(store) is None  # there are users now
    with Store(f"sqlite:///{tmp_path / 'other.db'}") as other:
        second = users.ensure_first_admin(other)
        assert second.generated_password != first.generated_password
        assert (
            users.ensure_first_admin(
                Store(f"sqlite:///{tmp_path / 'third.db'}"), "from-the-env"
            ).generated_password
            is None
        )
