"""The team: an organisation's users (admins change them, managers look), each user's own account,
and the one-time links that let a user choose a password.

Guard rails live here: every organisation keeps at least one active admin (checked under a lock
of the organisation's row, so two admins demoting each other cannot both succeed), only admins
change users, another organisation's user is NotFound, an email belongs to one account in the
whole product. Every change is written to the user's record history. A change that must end the
user's sessions (deactivation, role change, password change or reset) bumps `session_version`
(crm_web/auth.py).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from crm_web.database import use_org
from crm_web.errors import NotFound, ValidationError
from crm_web.extensions import db
from crm_web.models import (
    OPEN_ACTIVITY_STATUSES,
    Activity,
    ActivityTally,
    Deal,
    DealTally,
    Lead,
    Organization,
    RecordHistory,
    Role,
    User,
    UserToken,
    utcnow,
)
from crm_web.passwords import password_problem
from crm_web.permissions import require_role
from crm_web.services.accounts import EMAIL_TAKEN, email_problem, normalise_email
from crm_web.services.base import Actor, row_or_not_found
from crm_web.services.history import HistoryItem, history_for, readable, record_change
from crm_web.services.integrity import integrity_to_validation
from crm_web.services.text_search import LIKE_ESCAPE, like_escape

ENTITY = "user"
ROLES = [(Role.SALES.value, "Sales"), (Role.MANAGER.value, "Manager"), (Role.ADMIN.value, "Admin")]
OPEN_LEAD_STATUSES = ("new", "contacted", "qualified")
LAST_ADMIN = "The organisation needs at least one active admin: make someone else an admin first."

# What deactivating a user can hand over to someone else: name -> (model, "still open" condition).
REASSIGNABLE: dict[str, tuple[Any, Any]] = {
    "deal": (Deal, lambda: Deal.status == "open"),
    "lead": (Lead, lambda: Lead.status.in_(OPEN_LEAD_STATUSES)),
    "activity": (Activity, lambda: Activity.status.in_(OPEN_ACTIVITY_STATUSES)),
}
PLURALS = {"deal": "deals", "lead": "leads", "activity": "activities"}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class UserRow:
    """A line of the users list: the user and what they own that is still open."""

    user: User
    open_deals: int
    open_leads: int
    open_activities: int


@dataclass(frozen=True)
class PasswordLink:
    """A link just issued: the raw token exists only here (the database keeps its hash)."""

    user: User
    token: str
    purpose: str  # "invite" or "reset"
    expires_at: datetime


@dataclass(frozen=True)
class Deactivation:
    user: User
    entry_id: uuid.UUID  # the history entry Undo reads the moved records from
    moved: dict[str, int]
    to_name: str | None

    @property
    def summary(self) -> str:
        parts = [f"{n} {name if n == 1 else PLURALS[name]}" for name, n in self.moved.items() if n]
        return ", ".join(parts)


def _open_count(name: str) -> Any:
    model, still_open = REASSIGNABLE[name]
    return (
        select(func.count())
        .select_from(model)
        .where(model.org_id == User.org_id, model.owner_id == User.id, model.deleted_at.is_(None), still_open())
        .correlate(User)
        .scalar_subquery()
    )


def _open_tally(model: Any) -> Any:
    """A user's open deals or activities from the tallies the database keeps (services/stats/tallies.py):
    a few rows per owner, where counting read every open record of theirs."""
    if model is DealTally:
        count, still_open = DealTally.deals, DealTally.status == "open"
    else:
        count, still_open = ActivityTally.activities, ActivityTally.status.in_(OPEN_ACTIVITY_STATUSES)
    return (
        select(func.sum(count))
        .where(model.org_id == User.org_id, model.owner_id == User.id, still_open)
        .correlate(User)
        .scalar_subquery()
    )


class UserService:
    """An organisation's users, for its admins (who change them) and managers (who look)."""

    def __init__(self, actor: Actor, session: Session | None = None):
        self.actor = actor
        self.session = cast(Session, session or db.session)

    # --- reading (managers and admins) ----------------------------------------------------

    def _require_viewer(self) -> None:
        require_role(self.actor.role, Role.MANAGER, "see the team")

    def _require_admin(self, action: str = "change users") -> None:
        require_role(self.actor.role, Role.ADMIN, action)

    def _rows(self, *criteria: ColumnElement[bool]) -> list[UserRow]:
        """Users with their open deals, leads and activities: one statement, whatever the number of users."""
        stmt = select(User, _open_tally(DealTally), _open_count("lead"), _open_tally(ActivityTally)).where(
            User.org_id == self.actor.org_id, *criteria
        )
        rows = self.session.execute(stmt.order_by(User.active.desc(), func.lower(User.name), User.id)).all()
        return [UserRow(user, deals or 0, leads or 0, activities or 0) for user, deals, leads, activities in rows]

    def list_page(self, *, q: str = "") -> list[UserRow]:
        """Every user of the organisation (a team is small: no pages), searched by name or email."""
        self._require_viewer()
        q = " ".join(q.split())[:100]
        criteria = []
        if q:
            pattern = f"%{like_escape(q.lower())}%"
            criteria.append(
                or_(
                    func.lower(User.name).like(pattern, escape=LIKE_ESCAPE),
                    func.lower(User.email).like(pattern, escape=LIKE_ESCAPE),
                )
            )
        return self._rows(*criteria)

    def get(self, user_id: uuid.UUID) -> User:
        user = self.session.scalar(select(User).where(User.org_id == self.actor.org_id, User.id == user_id))
        if user is None:
            raise NotFound("That user does not exist in your organisation.")
        return user

    def detail(self, user_id: uuid.UUID) -> tuple[UserRow, list[HistoryItem]]:
        """The user with their open work, and their record history in words (names, labels, dates)."""
        self._require_viewer()
        rows = self._rows(User.id == user_id)
        if not rows:
            raise NotFound("That user does not exist in your organisation.")
        entries = history_for(self.actor, ENTITY, user_id, session=self.session)
        return rows[0], readable(self.actor, ENTITY, entries, session=self.session)

    def reassign_choices(self, user_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
        """Who can take over a user's open work: the other active users (one statement)."""
        rows = self.session.execute(
            select(User.id, User.name)
            .where(User.org_id == self.actor.org_id, User.active.is_(True), User.id != user_id)
            .order_by(func.lower(User.name))
        ).all()
        return [(row[0], row[1]) for row in rows]

    # --- writing (admins) --------------------------------------------------------------

    def _lock_org(self) -> None:
        """Serialise changes to the organisation's team (the last-admin rule reads, then writes)."""
        self.session.execute(select(Organization.id).where(Organization.id == self.actor.org_id).with_for_update())

    def _other_active_admins(self, user_id: uuid.UUID) -> int:
        return (
            self.session.scalar(
                select(func.count()).where(
                    User.org_id == self.actor.org_id,
                    User.role == Role.ADMIN.value,
                    User.active.is_(True),
                    User.id != user_id,
                )
            )
            or 0
        )

    def _history(self, user: User, changes: dict[str, Any], action: str = "updated") -> RecordHistory | None:
        return record_change(self.session, self.actor, ENTITY, user, action, changes)

    def set_list_columns(self, list_name: str, keys: list[str]) -> None:
        """The actor's own column choice for a list (any role; an empty list: the defaults). The keys are
        checked by the caller against the list's columns (crm_web/columns.py)."""
        user = self.session.get(User, self.actor.user_id)
        if user is None or user.org_id != self.actor.org_id:
            raise NotFound("That user does not exist.")
        chosen = dict(user.list_columns or {})
        if keys:
            chosen[list_name] = list(keys)
        else:
            chosen.pop(list_name, None)
        user.list_columns = chosen or None
        self._commit()

    def _commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError as error:
            self.session.rollback()
            failure = integrity_to_validation(error)
            if "email" in failure.field_errors:
                raise ValidationError(EMAIL_TAKEN, {"email": EMAIL_TAKEN}) from error
            raise failure from error

    def create(
        self, *, name: str, email: str, role: str, password: str | None = None
    ) -> tuple[User, PasswordLink | None]:
        """Add a user. Without a password they get an invitation link (returned); with one, they must
        change it at their first sign-in."""
        self._require_admin("add users")
        name = " ".join((name or "").split())
        email = normalise_email(email)
        errors: dict[str, str] = {}
        if not name:
            errors["name"] = "Enter the person's name."
        elif len(name) > 200:
            errors["name"] = "At most 200 characters."
        problem = email_problem(email)
        if problem:
            errors["email"] = problem
        if role not in {r.value for r in Role}:
            errors["role"] = "Choose a role."
        if password:
            problem = password_problem(password, email=email)
            if problem:
                errors["password"] = problem
        if errors:
            raise ValidationError("The user could not be added", errors)
        user = User(org_id=self.actor.org_id, name=name, email=email, role=role, password_hash="")
        if password:
            user.set_password(password)
            user.must_change_password = True
        self.session.add(user)
        self.session.flush()
        self._history(user, {"role": ["", role], "email": ["", email]}, action="created")
        link = None if password else self._issue_link(user, "invite")
        self._commit()
        return user, link

    def change_role(self, user_id: uuid.UUID, *, role: str) -> User:
        """A new role takes effect at once: the user's sessions end (they sign in again with it)."""
        self._require_admin("change roles")
        if role not in {r.value for r in Role}:
            raise ValidationError("Choose a role.", {"role": "Choose admin, manager or sales."})
        self._lock_org()
        user = self.get(user_id)
        if user.role == role:
            return user
        if user.role == Role.ADMIN.value and user.active and not self._other_active_admins(user.id):
            raise ValidationError(LAST_ADMIN, {"role": LAST_ADMIN})
        self._history(user, {"role": [user.role, role]})
        user.role = role
        user.session_version += 1
        self._commit()
        return user

    def deactivate(self, user_id: uuid.UUID, *, reassign_to: uuid.UUID | None = None) -> Deactivation:
        """The user can no longer sign in and their sessions end at their next request; their records
        keep them as owner, unless their open deals, leads and activities go to `reassign_to`
        (one UPDATE per table, listed in the history entry so Undo can move them back)."""
        self._require_admin("deactivate users")
        self._lock_org()
        user = self.get(user_id)
        if not user.active:
            raise ValidationError(f"{user.name} is already deactivated.")
        if user.role == Role.ADMIN.value and not self._other_active_admins(user.id):
            raise ValidationError(LAST_ADMIN)
        to_user = None
        if reassign_to is not None:
            to_user = self.session.scalar(
                select(User).where(User.org_id == self.actor.org_id, User.id == reassign_to, User.active.is_(True))
            )
            if to_user is None or to_user.id == user.id:
                raise ValidationError(
                    "Choose another active user of your organisation.",
                    {"reassign_to": "Choose another active user of your organisation."},
                )
        moved = self._move_open_work(user.id, to_user.id) if to_user else {}
        user.active = False
        user.session_version += 1
        changes: dict[str, Any] = {"status": ["active", "deactivated"]}
        if to_user is not None:
            changes["reassigned_to"] = ["", to_user.name]
            changes["moved"] = {"to": str(to_user.id), **{name: [str(i) for i in ids] for name, ids in moved.items()}}
        entry = self._history(user, changes)
        self.session.flush()
        self._commit()
        assert entry is not None
        return Deactivation(
            user=user,
            entry_id=entry.id,
            moved={name: len(ids) for name, ids in moved.items()},
            to_name=to_user.name if to_user else None,
        )

    def _move_open_work(self, from_id: uuid.UUID, to_id: uuid.UUID) -> dict[str, list[uuid.UUID]]:
        """One UPDATE ... RETURNING per table; each moved record's history says so (one INSERT per table)."""
        moved: dict[str, list[uuid.UUID]] = {}
        for name, (model, still_open) in REASSIGNABLE.items():
            ids = list(
                self.session.scalars(
                    update(model)
                    .where(
                        model.org_id == self.actor.org_id,
                        model.owner_id == from_id,
                        model.deleted_at.is_(None),
                        still_open(),
                    )
                    .values(owner_id=to_id, version=model.version + 1)
                    .returning(model.id)
                    .execution_options(synchronize_session=False)
                )
            )
            moved[name] = ids
            self._record_owner_change(name, ids, from_id, to_id)
        return moved

    def _record_owner_change(self, name: str, ids: list[uuid.UUID], from_id: uuid.UUID, to_id: uuid.UUID) -> None:
        """One history entry for the records of one table handed from one owner to another (if any)."""
        if ids:
            record_change(
                self.session,
                self.actor,
                name,
                None,
                "updated",
                {"owner_id": [str(from_id), str(to_id)]},
                entity_ids=ids,
            )

    def reactivate(self, user_id: uuid.UUID, *, undo_entry: uuid.UUID | None = None) -> tuple[User, int]:
        """The user may sign in again. With `undo_entry` (the Undo of a deactivation), the records it
        reassigned and that the other user still owns come back: returns how many."""
        self._require_admin("reactivate users")
        user = self.get(user_id)
        returned = 0
        if undo_entry is not None:
            returned = self._return_open_work(user, undo_entry)
        if not user.active:
            user.active = True
            self._history(user, {"status": ["deactivated", "active"]})
        elif undo_entry is None:
            raise ValidationError(f"{user.name} is already active.")
        self._commit()
        return user, returned

    def _return_open_work(self, user: User, entry_id: uuid.UUID) -> int:
        entry = self.session.scalar(
            select(RecordHistory).where(
                RecordHistory.org_id == self.actor.org_id,
                RecordHistory.entity_type == ENTITY,
                RecordHistory.entity_id == user.id,
                RecordHistory.id == entry_id,
            )
        )
        moved = (entry.changes or {}).get("moved") if entry is not None else None
        if entry is None or not moved or not any(moved.get(name) for name in REASSIGNABLE):
            raise NotFound("There is nothing to undo for that user.")
        to_id = uuid.UUID(moved["to"])
        returned = 0
        for name, (model, _) in REASSIGNABLE.items():
            ids = [uuid.UUID(i) for i in moved.get(name, [])]
            if not ids:
                continue
            back = list(
                self.session.scalars(
                    update(model)
                    .where(model.org_id == self.actor.org_id, model.id.in_(ids), model.owner_id == to_id)
                    .values(owner_id=user.id, version=model.version + 1)
                    .returning(model.id)
                    .execution_options(synchronize_session=False)
                )
            )
            self._record_owner_change(name, back, to_id, user.id)
            returned += len(back)
        entry.changes = {**entry.changes, "moved": {"to": moved["to"]}}  # an Undo runs once
        return returned

    def password_link(self, user_id: uuid.UUID) -> PasswordLink:
        """A new one-time link for the user: an invitation while they have no password, else a reset,
        which also ends their sessions. Earlier links of the user stop working."""
        self._require_admin("reset passwords")
        user = self.get(user_id)
        if not user.active:
            raise ValidationError(f"{user.name} is deactivated: reactivate them first.")
        purpose = "reset" if user.has_password else "invite"
        if purpose == "reset":
            user.session_version += 1
        self._history(
            user, {"password": ["", "reset link created" if purpose == "reset" else "invitation link created"]}
        )
        link = self._issue_link(user, purpose)
        self._commit()
        return link

    def _issue_link(self, user: User, purpose: str) -> PasswordLink:
        now = utcnow()
        self.session.execute(
            update(UserToken)
            .where(UserToken.user_id == user.id, UserToken.used_at.is_(None))
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(days=current_app.config.get("PASSWORD_LINK_DAYS", 7))
        self.session.add(
            UserToken(
                user_id=user.id,
                purpose=purpose,
                token_hash=_token_hash(token),
                expires_at=expires_at,
                created_by_id=self.actor.user_id,
            )
        )
        return PasswordLink(user=user, token=token, purpose=purpose, expires_at=expires_at)


# --- one's own account ---------------------------------------------------------------------


class AccountService:
    """What every user changes about themselves."""

    def __init__(self, user: User, session: Session | None = None):
        self.user = user
        self.actor = Actor.of(user)
        self.session = cast(Session, session or db.session)

    def _me(self) -> User:
        return row_or_not_found(self.session, User, self.user.id, "Your account no longer exists.")

    def update_profile(self, *, name: str) -> User:
        name = " ".join((name or "").split())
        if not name or len(name) > 200:
            raise ValidationError("Enter your name", {"name": "Enter your name (at most 200 characters)."})
        user = self._me()
        if name != user.name:
            record_change(self.session, self.actor, ENTITY, user, "updated", {"name": [user.name, name]})
            user.name = name
            self.session.commit()
        return user

    def change_password(self, *, current: str, new: str, confirm: str) -> User:
        """Needs the current password; every other session of the user ends (the caller renews this one)."""
        user = self._me()
        errors = {}
        if not user.check_password(current or ""):
            errors["current_password"] = "That is not your current password."
        problem = password_problem(new, email=user.email)
        if problem:
            errors["new_password"] = problem
        elif new == current:
            errors["new_password"] = "Choose a password different from the current one."
        if not errors and new != confirm:
            errors["confirm_password"] = "The two passwords differ."
        if errors:
            raise ValidationError("Your password was not changed", errors)
        user.set_password(new)
        user.must_change_password = False
        user.session_version += 1
        record_change(self.session, self.actor, ENTITY, user, "updated", {"password": ["", "changed"]})
        self.session.commit()
        return user

    def sign_out_everywhere(self, *, keep_this_session: bool) -> User:
        """End every session and remember cookie of the user (the caller renews this one if asked)."""
        user = self._me()
        user.session_version += 1
        what = "other sessions ended" if keep_this_session else "signed out everywhere"
        record_change(self.session, self.actor, ENTITY, user, "updated", {"sessions": ["", what]})
        self.session.commit()
        return user


def sign_out(user_id: uuid.UUID) -> None:
    """Signing out ends every session of the user: a copy of the session cookie must stop working,
    and a cookie-held session can only be revoked through the version it carries."""
    db.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


# --- password links (nobody is signed in yet) ------------------------------------------------


def find_link(token: str) -> tuple[UserToken, User] | None:
    """The unused, unexpired link with this token and its active user."""
    if not token or len(token) > 200:
        return None
    row = db.session.execute(
        select(UserToken, User)
        .join(User, User.id == UserToken.user_id)
        .options(joinedload(User.org))
        .where(
            UserToken.token_hash == _token_hash(token),
            UserToken.used_at.is_(None),
            UserToken.expires_at > utcnow(),
            User.active.is_(True),
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


def use_link(token: str, *, password: str, confirm: str) -> User:
    """Set the password through a link (once): the user's other sessions end, the link is spent."""
    found = find_link(token)
    if found is None:
        raise NotFound("This link is invalid, was already used or has expired. Ask your administrator for a new one.")
    link, user = found
    errors = {}
    problem = password_problem(password, email=user.email)
    if problem:
        errors["password"] = problem
    elif password != confirm:
        errors["confirm_password"] = "The two passwords differ."
    if errors:
        raise ValidationError("Choose another password", errors)
    session = cast(Session, db.session)
    use_org(session, user.org_id)
    spent = session.scalar(
        update(UserToken)
        .where(UserToken.id == link.id, UserToken.used_at.is_(None))
        .values(used_at=utcnow())
        .returning(UserToken.id)
        .execution_options(synchronize_session=False)
    )
    if spent is None:  # the same link used twice at once: only one wins
        session.rollback()
        raise NotFound("This link was already used. Ask your administrator for a new one.")
    user.set_password(password)
    user.must_change_password = False
    user.session_version += 1
    user.last_login_at = utcnow()
    what = "chosen (invitation accepted)" if link.purpose == "invite" else "reset"
    record_change(session, Actor.of(user), ENTITY, user, "updated", {"password": ["", what]})
    session.commit()
    return user
