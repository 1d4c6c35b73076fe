"""Who may do what: the roles of the web tool and the permission each user action needs.

An admin may do everything; an annotator reads, edits masks and submits masklets for review;
a reviewer reads and accepts or rejects, and never edits. The engine's service functions
check these when they are told who acts, so the CLI and the server enforce the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from masklet.engine.vocabulary import ReviewAction, Role
from masklet.errors import MaskletError

__all__ = ["PermissionDenied", "Permission", "REVIEW_PERMISSION", "ROLE_PERMISSIONS", "allowed", "require"]


class Permission(StrEnum):
    READ = "read"  # see projects, videos, frames, masks, exports, effort
    EDIT = "edit"  # masks, prompts, propagation, masklets; submit for review
    REVIEW = "review"  # accept or reject a masklet in review
    MANAGE = "manage"  # create projects, register videos, add users


class PermissionDenied(MaskletError):
    """The acting user's role does not allow the action."""


ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Permission),
        Role.ANNOTATOR: frozenset({Permission.READ, Permission.EDIT}),
        Role.REVIEWER: frozenset({Permission.READ, Permission.REVIEW}),
    }
)
REVIEW_PERMISSION: Mapping[ReviewAction, Permission] = MappingProxyType(
    {
        ReviewAction.SUBMIT: Permission.EDIT,
        ReviewAction.ACCEPT: Permission.REVIEW,
        ReviewAction.REJECT: Permission.REVIEW,
    }
)


def allowed(role: Role | str, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS.get(Role(role), frozenset())


def require(role: Role | str, permission: Permission, what: str) -> None:
    """PermissionDenied naming the role and what it may not do."""
    if not allowed(role, permission):
        raise PermissionDenied(f"a user with the {Role(role)} role may not {what}")
