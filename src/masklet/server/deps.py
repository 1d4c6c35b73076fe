"""FastAPI dependencies: the store, the logged-in user (cookie or bearer token), role checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from masklet.engine.permissions import Permission, require
from masklet.engine.records import User
from masklet.engine.store import Store
from masklet.engine.users import AuthError, user_for_token
from masklet.server.settings import ServerSettings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def request_token(request: Request) -> str | None:
    """The bearer token of the Authorization header, else the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(get_settings(request).session_cookie)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]


def current_user(request: Request, store: StoreDep) -> User:
    token = request_token(request)
    user = user_for_token(store, token) if token else None
    if user is None:
        raise AuthError(
            "log in first: POST /api/login, then send the session cookie or 'Authorization: Bearer TOKEN'"
        )
    return user


def allowed_to(permission: Permission, what: str) -> Callable[..., User]:
    """A dependency: the current user, if their role has `permission` (403 otherwise)."""

    def check(user: Annotated[User, Depends(current_user)]) -> User:
        require(user.role, permission, what)
        return user

    return check


UserDep = Annotated[User, Depends(current_user)]


def user_allowed_to(permission: Permission, what: str) -> Any:
    """`Annotated[User, ...]` for a route parameter: the current user, checked for `permission`."""
    return Annotated[User, Depends(allowed_to(permission, what))]


Reader = user_allowed_to(Permission.READ, "read projects")  # any logged-in role
