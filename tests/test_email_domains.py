"""The forms' email check remembers its domain check per domain without changing what it accepts."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from crm_web.forms import email_domains


def test_the_same_domain_is_checked_once_and_gives_the_same_result():
    email_domains._cached.cache_clear()
    first = validate_email("Ann@example.com", check_deliverability=False)
    second = validate_email("bob@example.com", check_deliverability=False)
    assert first.normalized == "Ann@example.com"
    assert second.normalized == "bob@example.com"
    assert second.ascii_domain == "example.com"
    info = email_domains._cached.cache_info()
    assert info.misses == 1 and info.hits == 1


def test_an_internationalised_domain_is_normalised_as_before():
    result = validate_email("anna@bücher.example", check_deliverability=False, test_environment=False)
    assert result.ascii_domain == "xn--bcher-kva.example"


@pytest.mark.parametrize("address", ["ann@exa mple.com", "ann@-bad-.com", "ann@localhost", "ann@.com"])
def test_a_refused_domain_is_refused_every_time(address):
    for _ in range(2):
        with pytest.raises(EmailNotValidError):
            validate_email(address, check_deliverability=False)
