"""The data model: every table of the CRM, importable from one place."""

from crm_web.models.activity import (
    ACTIVITY_PRIORITIES,
    ACTIVITY_STATUSES,
    ACTIVITY_TYPES,
    OPEN_ACTIVITY_STATUSES,
    Activity,
)
from crm_web.models.api_token import ApiToken
from crm_web.models.audit import HISTORY_ACTIONS, RecordHistory, UsageRecord
from crm_web.models.base import Base, SoftDeleteMixin, utcnow
from crm_web.models.company import COMPANY_SIZES, Company
from crm_web.models.contact import CONTACT_STATUSES, LEAD_SOURCES, Contact, ContactCompany
from crm_web.models.deal import CURRENCIES, DEAL_STATUSES, Deal
from crm_web.models.duplicate import (
    DuplicateDismissal,
    DuplicateScan,
    DuplicateScanGroup,
    DuplicateScanMember,
    Merge,
    MergeProposal,
)
from crm_web.models.exchange_rate import ExchangeRate
from crm_web.models.import_job import IMPORT_STATUSES, Import, ImportUpdate
from crm_web.models.lead import LEAD_STATUSES, Lead
from crm_web.models.notification import NOTIFICATION_KINDS, Notification
from crm_web.models.organization import DEFAULT_TIME_ZONE, Organization, Role, User, UserToken
from crm_web.models.pipeline import Pipeline, PipelineStage
from crm_web.models.saved_view import SavedView
from crm_web.models.search_word import SearchWord
from crm_web.models.tag import Tag, company_tags, contact_tags, deal_tags, lead_tags
from crm_web.models.tally import ActivityDayTally, ActivityTally, DealTally

__all__ = [
    "ACTIVITY_PRIORITIES",
    "ACTIVITY_STATUSES",
    "ACTIVITY_TYPES",
    "COMPANY_SIZES",
    "CONTACT_STATUSES",
    "CURRENCIES",
    "DEAL_STATUSES",
    "DEFAULT_TIME_ZONE",
    "HISTORY_ACTIONS",
    "IMPORT_STATUSES",
    "LEAD_SOURCES",
    "LEAD_STATUSES",
    "NOTIFICATION_KINDS",
    "OPEN_ACTIVITY_STATUSES",
    "Activity",
    "ActivityDayTally",
    "ActivityTally",
    "ApiToken",
    "Base",
    "Company",
    "Contact",
    "ContactCompany",
    "Deal",
    "DealTally",
    "DuplicateDismissal",
    "DuplicateScan",
    "DuplicateScanGroup",
    "DuplicateScanMember",
    "ExchangeRate",
    "Import",
    "ImportUpdate",
    "Lead",
    "Merge",
    "MergeProposal",
    "Notification",
    "Organization",
    "Pipeline",
    "PipelineStage",
    "RecordHistory",
    "Role",
    "SavedView",
    "SearchWord",
    "SoftDeleteMixin",
    "Tag",
    "UsageRecord",
    "User",
    "UserToken",
    "company_tags",
    "contact_tags",
    "deal_tags",
    "lead_tags",
    "utcnow",
]
