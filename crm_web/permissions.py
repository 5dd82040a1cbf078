"""Who may do what: one ordered role check (admin > manager > sales), used by services and views."""

from __future__ import annotations

from crm_web.errors import PermissionDenied
from crm_web.models import Role

__all__ = ["Role", "has_role", "require_role"]


def has_role(role: str | Role, needed: Role) -> bool:
    return Role(role).at_least(needed)


def require_role(role: str | Role, needed: Role, action: str = "do that") -> None:
    if not has_role(role, needed):
        raise PermissionDenied(f"You need the {needed.value} role to {action}.")
