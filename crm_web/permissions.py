"""Who may do what: one ordered role check (admin > manager > sales), and `can(who, action, record)`,
the one answer the services enforce and the templates ask before offering a button (a template
global), so a page never offers an action the service would refuse."""

from __future__ import annotations

from typing import Any

from crm_web.errors import PermissionDenied
from crm_web.models import Role

__all__ = ["RECORD_ACTIONS", "Role", "can", "has_role", "require_role"]

# Actions on one record: sales staff take them on their own (or unowned) records, managers and
# admins on any.
RECORD_ACTIONS = frozenset({"change", "delete", "convert", "close", "move", "tag"})


def has_role(role: str | Role, needed: Role) -> bool:
    return Role(role).at_least(needed)


def require_role(role: str | Role, needed: Role, action: str = "do that") -> None:
    if not has_role(role, needed):
        raise PermissionDenied(f"You need the {needed.value} role to {action}.")


def can(who: Any, action: str, record: Any = None) -> bool:
    """Whether `who` (a User or a services Actor) may take `action` on `record`."""
    if who is None or not getattr(who, "role", None):
        return False
    role = Role(who.role)
    if action not in RECORD_ACTIONS:
        raise ValueError(f"Unknown action {action!r}")
    if role.at_least(Role.MANAGER):
        return True
    user_id = getattr(who, "user_id", None) if hasattr(who, "user_id") else getattr(who, "id", None)
    owner_id = getattr(record, "owner_id", None)
    return owner_id is None or owner_id == user_id
