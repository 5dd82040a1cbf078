"""The email check of the forms (WTForms' `Email`, i.e. the `email-validator` library) with its
domain-name check remembered per domain.

`email_validator.validate_email` spends most of its time checking and IDNA-normalising the domain
part, and a list of people (an import, a bulk edit) names the same few domains over and over. The
library's own domain check is wrapped in an LRU cache: the same rules run, once per distinct domain
(its result only depends on its arguments; a refused domain raises, and a raise is not cached).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

_module: Any = importlib.import_module("email_validator.validate_email")
_original = _module.validate_email_domain_name


@functools.lru_cache(maxsize=4096)
def _cached(domain: str, test_environment: bool = False, globally_deliverable: bool = True) -> Any:
    return _original(domain, test_environment=test_environment, globally_deliverable=globally_deliverable)


def _validate_email_domain_name(domain: str, test_environment: bool = False, globally_deliverable: bool = True) -> Any:
    return dict(_cached(domain, test_environment, globally_deliverable))  # a copy: callers may change it


def install() -> None:
    """Use the remembered domain check in `email_validator.validate_email` (idempotent)."""
    _module.validate_email_domain_name = _validate_email_domain_name


install()
