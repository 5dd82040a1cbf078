"""The one password policy (web forms, `crm create-user`, invitations, resets), and sign-in timing.

A password has at least MIN_LENGTH characters, is not one of the 30,000 most common passwords
(the list the maintained zxcvbn package ships), and is not the account's email or its name part.
"""

from __future__ import annotations

import functools

from werkzeug.security import check_password_hash, generate_password_hash

MIN_LENGTH = 10
MAX_LENGTH = 200


@functools.cache
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str | None, *, email: str = "") -> str | None:
    """Why this password is refused, as a sentence for the form; None when it is acceptable."""
    password = password or ""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if len(password) > MAX_LENGTH:
        return f"Use at most {MAX_LENGTH} characters."
    folded = password.casefold()
    if folded in _common_passwords():
        return "This is one of the most common passwords: choose one that is harder to guess."
    email = (email or "").strip().casefold()
    local = email.split("@")[0]
    if email and (folded in (email, local) or (len(local) >= 4 and local in folded)):
        return "Do not use your email address in your password."
    return None


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash("not a real password: it only makes every failed sign-in cost the same")


def spend_a_password_check(password: str) -> None:
    """Check a password against a throw-away hash, so a sign-in for an unknown or deactivated account
    takes as long as one for a real account (the answer time must not tell which emails exist)."""
    check_password_hash(_dummy_hash(), password)
