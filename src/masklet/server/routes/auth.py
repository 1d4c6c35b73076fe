"""Log in and out, who am I, and (admins) users."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from masklet.engine import users
from masklet.engine.permissions import Permission
from masklet.engine.vocabulary import Role, TokenKind
from masklet.server.deps import SettingsDep, StoreDep, UserDep, request_token, user_allowed_to
from masklet.server.schemas import LoginRequest, LoginResponse, UserOut

router = APIRouter(prefix="/api", tags=["auth"])
Manager = user_allowed_to(Permission.MANAGE, "manage users")


@router.post("/login", response_model=LoginResponse)
def login(body: LoginRequest, response: Response, store: StoreDep, settings: SettingsDep) -> LoginResponse:
    """A session (also set as an HttpOnly cookie for the page) or an API token (`kind: "api"`)."""
    user = users.authenticate(store, body.name, body.password)
    token = users.log_in(store, user, body.kind)
    if body.kind is TokenKind.SESSION:
        response.set_cookie(
            settings.session_cookie, token, max_age=int(users.SESSION_LIFETIME.total_seconds()), httponly=True,
            samesite="strict", secure=settings.secure_cookies, path="/",
        )  # fmt: skip
    return LoginResponse(token=token, kind=body.kind, user=UserOut.model_validate(user))


@router.post("/logout", status_code=204)
def logout(request: Request, store: StoreDep, settings: SettingsDep, _: UserDep) -> Response:
    """End this login (the cookie's or the bearer token's)."""
    token = request_token(request)
    if token:
        users.log_out(store, token)
    response = Response(status_code=204)
    response.delete_cookie(settings.session_cookie, path="/")
    return response


@router.get("/me", response_model=UserOut)
def me(user: UserDep) -> UserOut:
    return UserOut.model_validate(user)


class UserCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    role: Role
    password: str | None = Field(default=None, min_length=users.MIN_PASSWORD_LENGTH, max_length=1000)


class NewUserOut(BaseModel):
    user: UserOut
    generated_password: str | None


@router.get("/users", response_model=list[UserOut])
def list_users(store: StoreDep, _: Manager) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in store.list_users()]


@router.post("/users", response_model=NewUserOut, status_code=201)
def add_user(body: UserCreate, store: StoreDep, admin: Manager) -> NewUserOut:
    """A new user; without a password one is generated and returned once."""
    new = users.add_user(store, body.name, body.role, password=body.password, by=admin.name)
    return NewUserOut(user=UserOut.model_validate(new.user), generated_password=new.generated_password)
