"""Database refusals as form errors: a constraint's name maps to the field it concerns."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crm_web.errors import ValidationError

# Database constraint -> (form field, message).
CONSTRAINT_MESSAGES: dict[str, tuple[str, str]] = {
    "deal_value_non_negative": ("value", "Value cannot be negative."),
    "deal_probability_valid_range": ("probability", "Probability must be between 0 and 100."),
    "stage_probability_valid_range": ("probability", "Probability must be between 0 and 100."),
    "stage_not_both_won_and_lost": ("is_lost", "A stage cannot be both won and lost."),
    "unique_won_stage_per_pipeline": ("is_won", "This pipeline already has a won stage."),
    "unique_lost_stage_per_pipeline": ("is_lost", "This pipeline already has a lost stage."),
    "unique_default_pipeline_per_org": ("is_default", "Another pipeline is already the default."),
    "uq_tags_org_name": ("name", "A tag with this name already exists."),
    "uq_users_email": ("email", "A user with this email already exists."),
    "uq_contact_companies_contact_company": ("company_id", "This contact is already linked to that company."),
    "lead_score_valid_range": ("score", "Score must be between 0 and 100."),
}


def commit_or_refuse(session: Session) -> None:
    """Commit the unit of work; a constraint violation rolls back and becomes a ValidationError."""
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise integrity_to_validation(error) from error


def integrity_to_validation(error: IntegrityError) -> ValidationError:
    text = str(error.orig)
    for constraint, (field_name, message) in CONSTRAINT_MESSAGES.items():
        if constraint in text:
            return ValidationError(message, {field_name: message})
    if "UNIQUE" in text.upper() and "users.email" in text:
        field_name, message = CONSTRAINT_MESSAGES["uq_users_email"]
        return ValidationError(message, {field_name: message})
    if "FOREIGN KEY" in text.upper():
        return ValidationError("A linked record no longer exists.", {})
    return ValidationError("The change conflicts with existing data.", {})
