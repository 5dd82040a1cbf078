"""Imports: the dry run, the run, Undo import and the history, one code path for the browser, the
command line and the worker.

A row goes through the entity's own rules: its form's validators (the WTForms form of the
create/edit page, filled from the row) and its service's `clean()` (the domain rules), so an import
accepts exactly what the forms accept. Related records are named in the file and resolved for a
whole batch at a time, one statement each (companies, contacts, deals, tags; the organisation's
users and pipelines once per run). A batch is written with one statement per table (`insert_rows`)
and committed with the import's progress; a run that fails removes what it wrote and records the line
it reached, so a file imports completely or not at all, and running it again gives the same result.
"""

from __future__ import annotations

import csv
import os
import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, update
from werkzeug.datastructures import MultiDict

from crm_web.errors import NotFound, PermissionDenied, ValidationError
from crm_web.imports.fields import Field, ImportSpec, check_mapping, guess_mapping, spec_for, with_custom_fields
from crm_web.imports.reading import CsvFormat, CsvReader, UnreadableFile, count_rows, detect_format
from crm_web.models import (
    Activity,
    Company,
    Contact,
    Deal,
    Import,
    ImportUpdate,
    Lead,
    Organization,
    RecordHistory,
    Role,
    Tag,
    User,
    utcnow,
)
from crm_web.models.mixins import full_name
from crm_web.services.base import ActorService
from crm_web.services.batch_insert import insert_rows
from crm_web.services.cache_versions import renew_epoch
from crm_web.services.deal_stages import apply_stage
from crm_web.services.duplicates.matching import company_name_key, domain_key, email_key
from crm_web.services.history import jsonable
from crm_web.services.last_activity import refresh_last_activity
from crm_web.services.pipeline_catalog import PipelineCatalog, PipelineInfo, StageInfo

BATCH = 1000
PREVIEW_ROWS = 20
SHOWN_ERRORS = 100
ON_DUPLICATE = ("skip", "update", "create")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TRUE_WORDS = {"y", "yes", "true", "1", "x", "on", "ja", "oui", "si", "t"}
FALSE_WORDS = {"n", "no", "false", "0", "off", "nein", "non", "f", ""}
TAG_SPLIT = re.compile(r"[,;|]")
# Record tables in the order Undo trashes them (children first) and a failed run deletes them.
RECORD_MODELS = (Activity, Deal, Contact, Lead, Company)
# Form fields naming related records by id: the import names them in the file instead.
RELATION_FIELDS = {"owner_id", "primary_company_id", "company_id", "contact_id", "deal_id", "lead_id", "stage_id"}
SERVICES = {
    "contact": "crm_web.services.contacts:ContactService",
    "company": "crm_web.services.companies:CompanyService",
    "lead": "crm_web.services.leads:LeadService",
    "deal": "crm_web.services.deals:DealService",
    "activity": "crm_web.services.activities:ActivityService",
}


# A running import whose progress has not moved for this long lost its worker.
STALE_AFTER = timedelta(minutes=10)


class WorkerLost(Exception):
    """The process running an import stopped before it ended."""


@dataclass(frozen=True)
class Options:
    on_duplicate: str = "skip"  # skip | update | create
    create_companies: bool = True  # a company named in the file but missing is created

    def __post_init__(self) -> None:
        if self.on_duplicate not in ON_DUPLICATE:
            raise ValidationError("Unknown duplicates policy.", {"on_duplicate": "Choose skip, update or create."})


@dataclass
class RowError:
    line: int
    column: str
    value: str
    reason: str


@dataclass
class Outcome:
    """What a run did (or a dry run would do)."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    duplicates: int = 0
    errors: int = 0
    new_companies: int = 0
    error_rows: list[RowError] = field(default_factory=list)
    preview: list[PreviewRow] = field(default_factory=list)
    errors_path: str | None = None

    def summary(self) -> str:
        return f"created {self.created}, updated {self.updated}, skipped {self.skipped}, errors {self.errors}"


@dataclass
class PreviewRow:
    line: int
    cells: list[str]  # the values as they will be saved, one per mapped column
    action: str  # create | update | skip | error
    error: str = ""


@dataclass
class FileInfo:
    """An uploaded file understood: its format, header, a guessed (or remembered) mapping."""

    format: CsvFormat
    header: list[str]
    mapping: list[str]
    remembered: bool


@dataclass
class Row:
    line: int
    cells: list[str]
    raw: dict[str, str]  # field -> cell, mapped non-empty cells only
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # (field, value, reason)
    action: str = "create"
    existing: Any = None
    tags: list[str] = field(default_factory=list)
    notice: str = ""  # why a row was skipped (a duplicate in the file): reported, not an error
    custom: dict[str, Any] | None = None  # custom field values given: {key: stored value}


def header_key(header: Sequence[str]) -> str:
    return "\x1f".join(h.strip().lower() for h in header)


def _service_class(spec: ImportSpec) -> Any:
    import importlib

    module, name = SERVICES[spec.name].split(":")
    return getattr(importlib.import_module(module), name)


def _unescape(cell: str) -> str:
    """Our export writes a cell a spreadsheet would evaluate with a leading apostrophe: read it back."""
    cell = cell.strip()
    if cell.startswith("'") and cell[1:].startswith(FORMULA_START):
        return cell[1:]
    return cell


def _norm_name(text: str) -> str:
    return " ".join(text.split()).lower()


def _from_json(model: Any, name: str, value: Any) -> Any:
    if value is None:
        return None
    python_type = model.__table__.c[name].type.python_type
    if python_type is Decimal:
        return Decimal(value)
    if python_type is uuid.UUID:
        return uuid.UUID(value)
    if python_type is datetime:
        return datetime.fromisoformat(value)
    if python_type is date:
        return date.fromisoformat(value)
    return value


class ImportService(ActorService):
    """Imports of one organisation, on behalf of one user."""

    # --- who may import ----------------------------------------------------------------

    def spec(self, entity: str) -> ImportSpec:
        """The entity's import spec with the organisation's custom fields."""
        from crm_web.services.custom_fields import org_schema

        return with_custom_fields(spec_for(entity), org_schema(self.session, self.org_id))

    def may_import(self) -> bool:
        """Managers and admins import; sales users when their organisation allows it."""
        if self.actor.has_role(Role.MANAGER):
            return True
        return bool(self.session.scalar(select(Organization.sales_can_import).where(Organization.id == self.org_id)))

    def require_import(self) -> None:
        if not self.may_import():
            raise PermissionDenied("Only managers and admins can import (an admin can allow sales users).")

    # --- understanding a file ----------------------------------------------------------

    def inspect_file(self, path: str, entity: str) -> FileInfo:
        """The file's format and header, and the mapping remembered for this header, else guessed."""
        spec = self.spec(entity)
        with CsvReader(path) as reader:
            header = reader.header
            fmt = reader.format
        remembered = self.remembered_mapping(spec, header)
        mapping = remembered if remembered is not None else guess_mapping(spec, header)
        return FileInfo(format=fmt, header=header, mapping=mapping, remembered=remembered is not None)

    def remembered_mapping(self, spec: ImportSpec, header: Sequence[str]) -> list[str] | None:
        """The mapping of this organisation's latest import of a file with the same headers."""
        key = header_key(header)
        recent = self.session.execute(
            select(Import.options, Import.mapping)
            .where(Import.org_id == self.org_id, Import.entity == spec.name)
            .order_by(Import.created_at.desc())
            .limit(50)
        ).all()
        for options, mapping in recent:
            if (options or {}).get("header_key") == key and isinstance((mapping or {}).get("columns"), list):
                try:
                    return check_mapping(spec, mapping["columns"], len(header))
                except ValueError:
                    return None
        return None

    # --- dry run and run ---------------------------------------------------------------

    def dry_run(
        self,
        path: str,
        entity: str,
        *,
        mapping: Sequence[str] | None = None,
        options: Options | None = None,
        errors_path: str | None = None,
    ) -> Outcome:
        """Validate every row and count what the import would do; nothing is written."""
        self.require_import()
        run = _Run(self, self.spec(entity), path, mapping, options or Options(), errors_path=errors_path, write=False)
        return run.execute()

    def upload(self, path: str, entity: str, *, file_name: str, owned_file: bool = False) -> Import:
        """Record an uploaded file as a draft import of `entity`, with its mapping remembered or guessed
        (an unreadable file raises UnreadableFile, and nothing is recorded)."""
        self.require_import()
        spec = self.spec(entity)
        info = self.inspect_file(path, spec.name)
        job = Import(
            org_id=self.org_id,
            created_by_id=self.actor.user_id,
            entity=spec.name,
            file_name=os.path.basename(file_name.replace("\\", "/"))[:255] or "import.csv",
            file_path=str(path),
            mapping={"columns": info.mapping, "header": info.header, "remembered": info.remembered},
            options={
                "on_duplicate": "skip",
                "create_companies": True,
                "header_key": header_key(info.header),
                "owned_file": owned_file,  # an upload: removed once the import ran (its error rows stay)
            },
            status="draft",
        )
        self.session.add(job)
        self.session.commit()
        return job

    def remove_abandoned_drafts(self, max_age: timedelta, *, now: datetime | None = None) -> int:
        """Drafts of the organisation nobody touched for `max_age` (an upload never run): their uploaded
        files leave IMPORT_DIR and their rows go, in one DELETE. Returns how many."""
        cutoff = (now or utcnow()) - max_age
        drafts = self.session.execute(
            select(Import.id, Import.file_path, Import.options).where(
                Import.org_id == self.org_id, Import.status == "draft", Import.updated_at < cutoff
            )
        ).all()
        if not drafts:
            return 0
        self.session.execute(
            delete(Import)
            .where(Import.org_id == self.org_id, Import.id.in_([row[0] for row in drafts]), Import.status == "draft")
            .execution_options(synchronize_session=False)
        )
        self.session.commit()
        for _id, path, options in drafts:  # after the commit: a file is never gone while its draft stays
            if (options or {}).get("owned_file") and path and os.path.exists(path):
                os.remove(path)
        return len(drafts)

    def draft(self, import_id: uuid.UUID) -> Import:
        job = self.get(import_id)
        if job.status != "draft":
            raise ValidationError(f"This import is {job.status}; its mapping can no longer change.")
        return job

    def configure(self, import_id: uuid.UUID, *, mapping: Sequence[str], options: Options) -> Import:
        """Set a draft's mapping and duplicates policy (remembered for the next file with these headers)."""
        self.require_import()
        job = self.draft(import_id)
        spec = self.spec(job.entity)
        header = job.mapping.get("header") or []
        try:
            columns = check_mapping(spec, mapping, len(header))
        except ValueError as error:
            raise ValidationError(str(error), {"mapping": str(error)}) from None
        job.mapping = {**job.mapping, "columns": columns}
        job.options = {
            **job.options,
            "on_duplicate": options.on_duplicate,
            "create_companies": options.create_companies,
        }
        self.session.commit()
        return job

    def preview(self, import_id: uuid.UUID) -> Outcome:
        """The draft's dry run: every row validated, the first rows shown, the error rows in a CSV."""
        job = self.draft(import_id)
        return self.dry_run(
            job.file_path or "",
            job.entity,
            mapping=job.mapping.get("columns"),
            options=Options(
                on_duplicate=job.options.get("on_duplicate", "skip"),
                create_companies=bool(job.options.get("create_companies", True)),
            ),
            errors_path=_errors_path_for(job.file_path or ""),
        )

    def start(self, import_id: uuid.UUID) -> Import:
        """A draft becomes pending (its rows counted for the progress bar); a job then runs it."""
        self.require_import()
        job = self.draft(import_id)
        if not any(job.mapping.get("columns") or []):
            raise ValidationError("Map at least one column to a field.", {"mapping": "Nothing is mapped."})
        job.total_rows = count_rows(job.file_path or "", detect_format(job.file_path or ""))
        job.status = "pending"
        self.session.commit()
        return job

    def create_import(
        self,
        path: str,
        entity: str,
        *,
        file_name: str,
        mapping: Sequence[str] | None = None,
        options: Options | None = None,
    ) -> Import:
        """Record an import ready to run (the command line: upload, configure and start in one go)."""
        job = self.upload(path, entity, file_name=file_name)
        columns = mapping if mapping is not None else job.mapping["columns"]
        try:
            self.configure(job.id, mapping=columns, options=options or Options())
            if not any(self.get(job.id).mapping["columns"]):
                raise ValidationError("No column could be mapped to a field: choose the fields of the columns.")
        except ValidationError as error:
            self.session.delete(self.get(job.id))  # nothing to run: no draft left behind
            self.session.commit()
            raise UnreadableFile(error.message) from None
        return self.start(job.id)

    def run(self, import_id: uuid.UUID, *, errors_path: str | None = None) -> Outcome:
        """Run a pending import to the end; on any failure remove what it wrote and mark it failed."""
        job = self.get(import_id)
        if job.status != "pending":
            raise ValidationError(f"This import is {job.status}; only a pending import runs.")
        spec = self.spec(job.entity)
        options = Options(
            on_duplicate=job.options.get("on_duplicate", "skip"),
            create_companies=bool(job.options.get("create_companies", True)),
        )
        job.status = "running"
        job.started_at = utcnow()
        self.session.commit()
        run = _Run(
            self,
            spec,
            job.file_path or "",
            job.mapping.get("columns"),
            options,
            errors_path=errors_path or _errors_path_for(job.file_path or ""),
            write=True,
            job=job,
        )
        try:
            outcome = run.execute()
        except Exception as error:
            self.session.rollback()
            self._discard(job.id, run.line, error)
            self._remove_upload(job)
            raise
        job = self.get(import_id)
        job.status = "done"
        job.finished_at = utcnow()
        job.rows_done = outcome.rows
        job.options = {**job.options, "errors_path": outcome.errors_path}
        renew_epoch(self.session, self.org_id)
        self.session.commit()
        self._remove_upload(job)
        return outcome

    @staticmethod
    def _remove_upload(job: Import) -> None:
        path = job.file_path
        if (job.options or {}).get("owned_file") and path and os.path.exists(path):
            os.remove(path)

    def recover_stale(self, *, now: datetime | None = None) -> list[uuid.UUID]:
        """Imports of the organisation left "running" by a worker that died (no progress for
        STALE_AFTER): what they wrote is removed and they are marked failed with the row they reached."""
        cutoff = (now or utcnow()) - STALE_AFTER
        stale = self.session.execute(
            select(Import.id, Import.rows_done).where(
                Import.org_id == self.org_id, Import.status == "running", Import.updated_at < cutoff
            )
        ).all()
        for import_id, rows_done in stale:
            self._discard(import_id, rows_done + 2, WorkerLost("the worker stopped"), row=rows_done + 1)
        return [row[0] for row in stale]

    def _discard(self, import_id: uuid.UUID, line: int, error: BaseException, *, row: int | None = None) -> None:
        """A run that failed: delete the records it created, revert what it updated, say where it stopped."""
        self._revert_updates(import_id)
        for model in RECORD_MODELS:
            self.session.execute(
                delete(model)
                .where(model.org_id == self.org_id, model.import_id == import_id)
                .execution_options(synchronize_session=False)
            )
        job = self.get(import_id)
        job.status = "failed"
        job.finished_at = utcnow()
        known = isinstance(error, (UnreadableFile, WorkerLost)) and error.args
        reason = error.args[0] if known else "an unexpected error"
        where = f"row {row}" if row is not None else f"line {line}"
        job.message = f"Stopped at {where}: {reason}. Nothing of this import was kept."[:2000]
        job.created_count = job.updated_count = 0
        renew_epoch(self.session, self.org_id)
        self.session.commit()

    # --- reading imports ----------------------------------------------------------------

    def get(self, import_id: uuid.UUID) -> Import:
        job = self.session.scalar(select(Import).where(Import.org_id == self.org_id, Import.id == import_id))
        if job is None:
            raise NotFound("That import does not exist.")
        return job

    def history(self, *, limit: int = 100) -> list[tuple[Import, str | None]]:
        """The organisation's imports, newest first, with who ran them (one statement)."""
        rows = self.session.execute(
            select(Import, User.name)
            .outerjoin(User, User.id == Import.created_by_id)
            .where(Import.org_id == self.org_id)
            .order_by(Import.created_at.desc())
            .limit(limit)
        ).all()
        return [(row[0], row[1]) for row in rows]

    # --- undo ----------------------------------------------------------------------------

    def undo(self, import_id: uuid.UUID) -> dict[str, int]:
        """Move every record the import created to the trash (one UPDATE per table) and revert the
        fields it updated that nobody changed since. Returns {table: records trashed}."""
        self.require_import()
        job = self.get(import_id)
        if job.status != "done":
            raise ValidationError(f"This import is {job.status}: only a finished import can be undone.")
        if not self.actor.has_role(Role.MANAGER) and job.created_by_id != self.actor.user_id:
            raise PermissionDenied("You can only undo your own imports.")
        now = utcnow()
        trashed: dict[str, int] = {}
        activity_contacts = {
            contact_id
            for contact_id in self.session.scalars(
                select(Activity.contact_id).where(Activity.org_id == self.org_id, Activity.import_id == import_id)
            )
            if contact_id is not None
        }
        for model in RECORD_MODELS:
            result = self.session.execute(
                update(model)
                .where(model.org_id == self.org_id, model.import_id == import_id, model.deleted_at.is_(None))
                .values(deleted_at=now, deleted_by_id=self.actor.user_id)
                .execution_options(synchronize_session=False)
            )
            trashed[model.__tablename__] = result.rowcount or 0  # type: ignore[attr-defined]
        if activity_contacts:
            refresh_last_activity(self.session, self.org_id, activity_contacts)
        self._revert_updates(import_id)
        job.status = "undone"
        job.undone_at = now
        renew_epoch(self.session, self.org_id)
        self.session.commit()
        return trashed

    def _revert_updates(self, import_id: uuid.UUID) -> None:
        job = self.get(import_id)
        spec = self.spec(job.entity)
        model = spec.entity.model
        changes = self.session.execute(
            select(ImportUpdate.record_id, ImportUpdate.previous).where(
                ImportUpdate.org_id == self.org_id, ImportUpdate.import_id == import_id
            )
        ).all()
        if not changes:
            return
        records = {
            r.id: r
            for r in self.session.scalars(
                select(model)
                .where(model.org_id == self.org_id, model.id.in_([c[0] for c in changes]))
                .execution_options(include_deleted=True)
            )
        }
        tag_table = spec.entity.tag_table
        for record_id, previous in changes:
            record = records.get(record_id)
            if record is None:
                continue
            for name, (old, new) in previous.get("fields", {}).items():
                if jsonable(getattr(record, name)) == new:  # nobody changed it since
                    setattr(record, name, _from_json(model, name, old))
            added = previous.get("added_tags") or []
            if added and tag_table is not None:
                self.session.execute(
                    delete(tag_table).where(
                        tag_table.c[spec.entity.tag_column] == record_id,
                        tag_table.c.tag_id.in_([uuid.UUID(t) for t in added]),
                    )
                )
        self.session.flush()


def _label(values: dict[str, Any]) -> str:
    """What a new record is called in its history (as history.label_of names a loaded one)."""
    person = " ".join(str(values.get(k) or "") for k in ("first_name", "last_name")).strip()
    return person or str(values.get("name") or values.get("subject") or "")


def _among(expression: Any, values: list[str]) -> Any:
    """`expression IN (values)` for a batch's worth of values, the values written into the statement
    as constants: a statement with a different text every batch is never prepared, so PostgreSQL
    plans it with the values and matches them through a hash (a generic plan over 1,000 parameters
    compares each row with each value, and the table grows with every batch an import writes)."""
    return expression.in_(bindparam(None, values, expanding=True, literal_execute=True))


def _errors_path_for(path: str) -> str:
    base, _ = os.path.splitext(path)
    return f"{base}.errors.csv"


class _Run:
    """One pass over a file: validate, resolve, (write), count."""

    def __init__(
        self,
        service: ImportService,
        spec: ImportSpec,
        path: str,
        mapping: Sequence[str] | None,
        options: Options,
        *,
        errors_path: str | None,
        write: bool,
        job: Import | None = None,
    ):
        self.service = service
        self.session = service.session
        self.actor = service.actor
        self.org_id = service.org_id
        self.spec = spec
        self.path = path
        self.given_mapping = mapping
        self.options = options
        self.errors_path = errors_path
        self.write = write
        self.job = job
        self.import_id = job.id if job is not None else None
        self.outcome = Outcome()
        self.line = 1
        self.seen: set[Any] = set()  # duplicate keys met in the file so far
        self.model = spec.entity.model
        self.entity_service = _service_class(spec)(self.actor, self.session)
        self.form = spec.form(formdata=None, meta={"csrf": False})
        self.fields = {f.name: f for f in spec.fields}
        from crm_web.custom_fields import live_fields
        from crm_web.services.custom_fields import org_schema

        self.custom = {cf.name: cf for cf in live_fields(org_schema(self.session, self.org_id), spec.name)}
        self._errors_file: Any = None
        self._errors_writer: Any = None
        self.sales_only = not self.actor.has_role(Role.MANAGER)
        self.tops: dict[uuid.UUID, float] = {}
        self.choices: dict[tuple[str, str], str] = {}

    # --- the pass --------------------------------------------------------------------

    def execute(self) -> Outcome:
        with CsvReader(self.path) as reader:
            self.header = reader.header
            width = len(self.header)
            if self.given_mapping is None:
                self.mapping = guess_mapping(self.spec, self.header)
            else:
                try:
                    self.mapping = check_mapping(self.spec, self.given_mapping, width)
                except ValueError as error:
                    raise UnreadableFile(str(error)) from None
            if not any(self.mapping):
                raise UnreadableFile("No column could be mapped to a field of " + self.spec.entity.plural + ".")
            self.mapped = {name for name in self.mapping if name}
            self.form.process(formdata=MultiDict())  # every field at its default
            self.form_fields = [n for n in self.mapped if n in self.form._fields]
            self._load_once()
            try:
                for batch in self._batches(reader.rows()):
                    self._batch(batch)
            finally:
                if self._errors_file is not None:
                    self._errors_file.close()
        return self.outcome

    def _batches(self, rows: Iterator[tuple[int, list[str]]]) -> Iterator[list[Row]]:
        batch: list[Row] = []
        for line, cells in rows:
            self.line = line
            batch.append(self._parse(line, cells))
            if len(batch) >= BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _parse(self, line: int, cells: list[str]) -> Row:
        width = len(self.header)
        row = Row(line=line, cells=cells, raw={})
        if len(cells) > width and any(c.strip() for c in cells[width:]):
            row.errors.append(("", "", f"The row has {len(cells)} cells; the header has {width}."))
        for name, cell in zip(self.mapping, cells, strict=False):
            if name and cell.strip():
                row.raw[name] = _unescape(cell)
        return row

    # --- once per run: users, pipelines ---------------------------------------------------

    def _load_once(self) -> None:
        users = self.session.execute(
            select(User.id, User.name, User.email).where(User.org_id == self.org_id, User.active.is_(True))
        ).all()
        self.users: dict[str, uuid.UUID] = {}
        for user_id, name, email in users:
            self.users.setdefault(_norm_name(name), user_id)
            self.users[email.lower()] = user_id
        self.pipelines: list[PipelineInfo] = []
        if self.spec.name == "deal":
            self.pipelines = PipelineCatalog(self.actor, self.session).pipeline_list()
        self.company_keys: dict[str, uuid.UUID] = {}
        if self.spec.name == "company":  # names and website domains of the organisation's companies
            for company_id, name, website in self.session.execute(
                select(Company.id, Company.name, Company.website).where(
                    Company.org_id == self.org_id, Company.deleted_at.is_(None)
                )
            ):
                self.company_keys.setdefault("n:" + (company_name_key(name) or ""), company_id)
                domain = domain_key(website)
                if domain:
                    self.company_keys.setdefault("d:" + domain, company_id)

    # --- one batch -------------------------------------------------------------------------

    def _batch(self, rows: list[Row]) -> None:
        for row in rows:
            if not row.errors:
                self._validate(row)
        self._resolve(rows)
        self._find_duplicates(rows)
        for row in rows:
            if row.errors:
                row.action = "error"
            self._count(row)
        if self.write:
            self._write(rows)
            self._progress(rows)
        for row in rows:
            self._report(row)

    def _count(self, row: Row) -> None:
        out = self.outcome
        out.rows += 1
        if row.action == "error":
            out.errors += 1
        elif row.action == "create":
            out.created += 1
        elif row.action == "update":
            out.updated += 1
        else:
            out.skipped += 1

    def _report(self, row: Row) -> None:
        out = self.outcome
        if len(out.preview) < PREVIEW_ROWS:
            shown = [self._display(name, row) for name in self.mapping if name]
            out.preview.append(PreviewRow(row.line, shown, row.action, self._reasons(row)))
        if not row.errors and not row.notice:
            return
        for name, value, reason in row.errors or [("", "", row.notice)]:
            if len(out.error_rows) < SHOWN_ERRORS:
                out.error_rows.append(RowError(row.line, self._column(name) if name else "", value[:200], reason))
        if self.errors_path:
            if self._errors_writer is None:
                self._errors_file = open(self.errors_path, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115
                self._errors_writer = csv.writer(self._errors_file)
                self._errors_writer.writerow([*self.header, "error"])
                out.errors_path = self.errors_path
            cells = row.cells + [""] * max(0, len(self.header) - len(row.cells))
            self._errors_writer.writerow([*cells, self._reasons(row)])

    def _reasons(self, row: Row) -> str:
        return (
            "; ".join(f"{self._column(name)}: {reason}" if name else reason for name, _value, reason in row.errors)
            or row.notice
            or ("Skipped: a duplicate of an existing record." if row.action == "skip" else "")
        )

    def _column(self, name: str) -> str:
        """The CSV header of the column mapped to `name` (else the field's label)."""
        if name in self.mapping:
            return self.header[self.mapping.index(name)]
        found = self.spec.field(name)
        return found.label if found else name

    def _display(self, name: str, row: Row) -> str:
        value = row.raw.get(name, "")
        found = self.spec.field(name)
        if found is not None and found.kind == "choice" and value:
            return found.choice_value(value)
        return value

    # --- validation: the form, then the service ---------------------------------------------

    def _validate(self, row: Row) -> None:
        data: MultiDict[str, str] = MultiDict()
        for name, cell in row.raw.items():
            found = self.fields.get(name)
            if found is not None and found.kind == "custom":
                self._custom_value(row, name, cell)
                continue
            if found is None or found.kind not in ("value", "choice", "bool"):
                continue
            if found.kind == "choice":
                data[name] = self._choice(found, cell)
            elif found.kind == "bool":
                word = cell.strip().lower()
                if word in TRUE_WORDS:
                    data[name] = "y"
                elif word not in FALSE_WORDS:
                    row.errors.append((name, cell, "Not a yes/no value."))
            else:
                data[name] = cell
        form = self.form
        # Only the mapped fields change from row to row: the others keep the defaults processed once.
        for name in self.form_fields:
            form[name].process(data)
        # The form's validators of the cells given; what the row leaves empty takes the form's defaults
        # and the service's rules decide (a required name, say).
        for name in data:
            if not form[name].validate(form):
                row.errors.append((name, row.raw.get(name, ""), " ".join(str(e) for e in form[name].errors)))
        if row.errors:
            return
        values = {k: v for k, v in form.values().items() if k not in RELATION_FIELDS}
        if row.custom is not None:
            values["_custom"] = row.custom
        if "tags" in row.raw:
            row.tags = [t.strip()[:60] for t in TAG_SPLIT.split(row.raw["tags"]) if t.strip()]
        row.values = values

    def _custom_value(self, row: Row, name: str, cell: str) -> None:
        """A custom field's cell, validated by its type (a user by name or email); kept in row.custom."""
        from crm_web.custom_fields import ValueProblem, clean_value

        cf = self.custom[name]
        text = cell
        if cf.type == "user":
            found = self.users.get(cell.strip().lower()) or self.users.get(_norm_name(cell))
            if found is None:
                row.errors.append((name, cell, "No active user of your organisation has this name or email."))
                return
            text = str(found)
        try:
            value = clean_value(cf, text)
        except ValueProblem as problem:
            row.errors.append((name, cell, str(problem)))
            return
        if value is not None:
            row.custom = {**(row.custom or {}), cf.key: value}

    def _choice(self, found: Field, cell: str) -> str:
        """`found.choice_value(cell)`, remembered per distinct cell (a column of choices repeats a few)."""
        key = (found.name, cell)
        value = self.choices.get(key)
        if value is None:
            value = found.choice_value(cell)
            if len(self.choices) < 10_000:
                self.choices[key] = value
        return value

    def _clean(self, row: Row, values: dict[str, Any], obj: Any = None) -> dict[str, Any] | None:
        """The service's rules over the form's values (relations are resolved and checked here)."""
        try:
            return self.entity_service.clean(dict(values), obj)
        except ValidationError as error:
            for name, message in (error.field_errors or {"": error.message}).items():
                row.errors.append((name, row.raw.get(name, ""), message))
            return None

    # --- related records by name, a batch at a time ----------------------------------------

    def _resolve(self, rows: list[Row]) -> None:
        live = [r for r in rows if not r.errors]
        if "owner" in self.mapped or self.sales_only:
            for row in live:
                self._resolve_owner(row)
        if "company" in self.mapped:
            self._resolve_companies(live)
        if "contact" in self.mapped:
            self._resolve_contacts(live)
        if "deal" in self.mapped:
            self._resolve_deals(live)
        if self.spec.name == "deal":
            for row in live:
                self._resolve_stage(row)

    def _resolve_owner(self, row: Row) -> None:
        if self.sales_only:  # sales users import into their own ownership
            row.values["owner_id"] = self.actor.user_id
            return
        cell = row.raw.get("owner")
        if not cell:
            return
        owner = self.users.get(cell.strip().lower()) or self.users.get(_norm_name(cell))
        if owner is None:
            row.errors.append(("owner", cell, "No active user of your organisation has this email or name."))
        else:
            row.values["owner_id"] = owner

    def _resolve_companies(self, rows: list[Row]) -> None:
        key = "primary_company_id" if self.spec.name == "contact" else "company_id"
        wanted: dict[str, str] = {}  # the first spelling names a new company
        for r in rows:
            if r.raw.get("company"):
                wanted.setdefault(_norm_name(r.raw["company"]), " ".join(r.raw["company"].split()))
        if not wanted:
            return
        found: dict[str, uuid.UUID] = {}
        for company_id, name in self.session.execute(
            select(Company.id, Company.name)
            .where(
                Company.org_id == self.org_id,
                Company.deleted_at.is_(None),
                _among(func.lower(func.trim(Company.name)), sorted(wanted)),
            )
            .order_by(Company.created_at)
        ):
            found.setdefault(_norm_name(name), company_id)
        missing = [wanted[k] for k in wanted if k not in found]
        if missing and self.options.create_companies:
            new: list[dict[str, Any]] = [
                {
                    "id": uuid.uuid4(),
                    "org_id": self.org_id,
                    "name": name[:200],
                    "owner_id": self.actor.user_id,
                    "import_id": self.import_id,
                }
                for name in missing
            ]
            if self.write:
                insert_rows(self.session, Company.__table__, new)
            self.outcome.new_companies += len(new)
            found.update({_norm_name(c["name"]): c["id"] for c in new})
        for row in rows:
            cell = row.raw.get("company")
            if not cell:
                continue
            company = found.get(_norm_name(cell))
            if company is None:
                row.errors.append(("company", cell, "No company has this name (tick “create missing companies”)."))
            else:
                row.values[key] = company

    def _resolve_contacts(self, rows: list[Row]) -> None:
        cells = {r.raw["contact"].strip() for r in rows if r.raw.get("contact")}
        if not cells:
            return
        emails = sorted(c.lower() for c in cells if "@" in c)
        names = sorted(_norm_name(c) for c in cells if "@" not in c)
        name_expr = func.lower(full_name(Contact.first_name, Contact.last_name))
        found: dict[str, uuid.UUID] = {}
        for contact_id, email, name in self.session.execute(
            select(Contact.id, func.lower(Contact.email), name_expr)
            .where(
                Contact.org_id == self.org_id,
                Contact.deleted_at.is_(None),
                or_(_among(func.lower(Contact.email), emails), _among(name_expr, names)),
            )
            .order_by(Contact.created_at)
        ):
            if email:
                found.setdefault(email, contact_id)
            found.setdefault(_norm_name(name or ""), contact_id)
        for row in rows:
            cell = row.raw.get("contact")
            if not cell:
                continue
            contact_id = found.get(cell.strip().lower() if "@" in cell else _norm_name(cell))
            if contact_id is None:
                row.errors.append(("contact", cell, "No contact has this email or name."))
            else:
                row.values["contact_id"] = contact_id

    def _resolve_deals(self, rows: list[Row]) -> None:
        names = sorted({_norm_name(r.raw["deal"]) for r in rows if r.raw.get("deal")})
        if not names:
            return
        found: dict[str, uuid.UUID] = {}
        for deal_id, name in self.session.execute(
            select(Deal.id, Deal.name)
            .where(
                Deal.org_id == self.org_id,
                Deal.deleted_at.is_(None),
                _among(func.lower(func.trim(Deal.name)), names),
            )
            .order_by(Deal.created_at)
        ):
            found.setdefault(_norm_name(name), deal_id)
        for row in rows:
            cell = row.raw.get("deal")
            if cell:
                deal = found.get(_norm_name(cell))
                if deal is None:
                    row.errors.append(("deal", cell, "No deal has this name."))
                else:
                    row.values["deal_id"] = deal

    def _resolve_stage(self, row: Row) -> None:
        pipeline: PipelineInfo | None
        cell = row.raw.get("pipeline")
        if cell:
            pipeline = next((p for p in self.pipelines if _norm_name(p.name) == _norm_name(cell)), None)
            if pipeline is None:
                row.errors.append(("pipeline", cell, "No pipeline has this name."))
                return
        else:
            pipeline = next((p for p in self.pipelines if p.is_default), self.pipelines[0] if self.pipelines else None)
            if pipeline is None:
                row.errors.append(("pipeline", "", "The organisation has no pipeline to put deals in."))
                return
        stage_cell = row.raw.get("stage")
        stage: StageInfo | None
        if stage_cell:
            stage = next((s for s in pipeline.stages if _norm_name(s.name) == _norm_name(stage_cell)), None)
            if stage is None:
                row.errors.append(("stage", stage_cell, f"The pipeline {pipeline.name} has no stage of this name."))
                return
        else:
            stage = next(iter(pipeline.open_stages), None)
            if stage is None:
                row.errors.append(("stage", "", f"The pipeline {pipeline.name} has no open stage."))
                return
        row.values["_stage"] = stage

    # --- duplicates -------------------------------------------------------------------------

    def _key(self, row: Row) -> list[Any]:
        """The keys a row is a duplicate by (several for a company: its name and website domain)."""
        name = self.spec.name
        values = row.values
        if name in ("contact", "lead"):
            email = email_key(values.get("email"))
            return [email] if email else []
        if name == "company":
            company = company_name_key(values.get("name"))
            keys = ["n:" + company] if company else []
            domain = domain_key(values.get("website"))
            return [*keys, "d:" + domain] if domain else keys
        if name == "deal":
            stage = values.get("_stage")
            return [(stage.pipeline_id, _norm_name(values["name"]))] if stage and values.get("name") else []
        return []

    def _find_duplicates(self, rows: list[Row]) -> None:
        live = [r for r in rows if not r.errors]
        keyed = [(r, self._key(r)) for r in live]
        existing = self._existing([k for _r, keys in keyed for k in keys])
        policy = self.options.on_duplicate
        for row, keys in keyed:
            in_file = any(k in self.seen for k in keys)
            self.seen.update(keys)
            match = next((existing[k] for k in keys if k in existing), None)
            if in_file and policy != "create":
                row.action = "skip"
                row.notice = "Skipped: a duplicate of an earlier row of this file."
                self.outcome.duplicates += 1
                continue
            if match is not None and policy != "create":
                self.outcome.duplicates += 1
                row.action = "update" if policy == "update" else "skip"
                row.existing = match
                if row.action == "update" and self.sales_only and match.owner_id not in (None, self.actor.user_id):
                    # The owner-or-manager rule of every edit (BaseService.check_can_modify).
                    row.action = "skip"
                    row.notice = "Skipped: the existing record belongs to someone else."
            values = self._cleaned(row)
            if values is None:
                continue
            row.values = values

    def _cleaned(self, row: Row) -> dict[str, Any] | None:
        """The row's values through the service's rules: all of them for a new record, the mapped
        non-empty ones for an update (relations resolved above are set after the rules)."""
        relations = {k: v for k, v in row.values.items() if k in RELATION_FIELDS or k.startswith("_")}
        plain = {k: v for k, v in row.values.items() if k not in relations}
        if row.action == "update":
            plain = {k: v for k, v in plain.items() if self._mapped_value(k, row)}
            relations = {k: v for k, v in relations.items() if k != "owner_id" or "owner" in row.raw}
        cleaned = self._clean(row, plain, row.existing if row.action == "update" else None)
        if row.action == "create":
            given = relations.get("_custom") or {}
            for cf in self.custom.values():
                if cf.required and cf.key not in given:
                    row.errors.append((cf.name, "", f"{cf.label} is required."))
            if row.errors:
                return None
        if cleaned is None:
            return None
        return {**cleaned, **relations}

    def _mapped_value(self, key: str, row: Row) -> bool:
        if key == "due_at":
            return bool(row.raw.get("due_date"))
        return bool(row.raw.get(key))

    def _existing(self, keys: list[Any]) -> dict[Any, Any]:
        """Existing live records of the organisation by duplicate key: one statement per batch."""
        if not keys:
            return {}
        model = self.model
        name = self.spec.name
        scoped = select(model).where(model.org_id == self.org_id, model.deleted_at.is_(None)).order_by(model.created_at)
        found: dict[Any, Any] = {}
        if name in ("contact", "lead"):
            # Trashed records are left out here rather than in the statement: its `deleted_at IS NULL`
            # would let the planner pick a partial index of the organisation's live rows over the
            # (organisation, email) index, and with the statistics of a table this import is filling
            # (taken while it was empty) it reads the organisation's every row for each batch.
            emails = _among(func.lower(model.email), sorted(set(keys)))
            by_email = (
                select(model)
                .where(model.org_id == self.org_id, emails)
                .order_by(model.created_at)
                .execution_options(include_deleted=True)
            )
            for record in self.session.scalars(by_email):
                if record.deleted_at is None:
                    found.setdefault(email_key(record.email) or record.email.lower(), record)
        elif name == "company":
            ids = {self.company_keys[k] for k in keys if k in self.company_keys}
            if ids:
                by_id = {c.id: c for c in self.session.scalars(scoped.where(model.id.in_(ids)))}
                for k in keys:
                    if k in self.company_keys and self.company_keys[k] in by_id:
                        found[k] = by_id[self.company_keys[k]]
        elif name == "deal":
            names = sorted({k[1] for k in keys})
            for record in self.session.scalars(scoped.where(_among(func.lower(func.trim(Deal.name)), names))):
                found.setdefault((record.pipeline_id, _norm_name(record.name)), record)
        return found

    # --- writing ---------------------------------------------------------------------------

    def _write(self, rows: list[Row]) -> None:
        creates = [r for r in rows if r.action == "create"]
        updates = [r for r in rows if r.action == "update"]
        tag_ids = self._tags([r for r in (*creates, *updates) if r.tags])
        if self.spec.name == "deal" and creates:
            stages = {r.values["_stage"].id for r in creates} - set(self.tops)
            if stages:
                for stage_id, top in self.session.execute(
                    select(Deal.stage_id, func.min(Deal.position))
                    .where(Deal.org_id == self.org_id, Deal.stage_id.in_(stages))
                    .group_by(Deal.stage_id)
                    .execution_options(include_deleted=True)
                ):
                    if stage_id is not None:
                        self.tops[stage_id] = top
        new_rows = [self._insert_values(r) for r in creates]
        if new_rows:
            insert_rows(self.session, self.model.__table__, new_rows)
            insert_rows(self.session, RecordHistory.__table__, self._created_history(new_rows))
        links: list[dict[str, Any]] = []
        tag_table = self.spec.entity.tag_table
        column = self.spec.entity.tag_column
        for row, values in zip(creates, new_rows, strict=True):
            links.extend({column: values["id"], "tag_id": tag_ids[t.lower()]} for t in dict.fromkeys(row.tags))
        for row in updates:
            self._update(row, tag_ids, links)
        if links and tag_table is not None:
            unique = {(link[column], link["tag_id"]): link for link in links}
            insert_rows(self.session, tag_table, list(unique.values()))
        if self.spec.name == "activity":
            contacts = {v["contact_id"] for v in new_rows if v.get("contact_id")}
            if contacts:
                refresh_last_activity(self.session, self.org_id, contacts)
        if self.spec.name == "company":
            for values in new_rows:  # a later row of the file naming the same company is a duplicate
                self.company_keys.setdefault("n:" + (company_name_key(values["name"]) or ""), values["id"])

    def _created_history(self, new_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A "created by import <file>" history entry per new record, inserted with the batch (no
        statement per row); the history names the file and keeps the import's id."""
        now = utcnow()
        file_name = self.job.file_name if self.job is not None else os.path.basename(self.path)
        changes = {"import": file_name, "import_id": str(self.import_id) if self.import_id else None}
        return [
            {
                "id": uuid.uuid4(),
                "org_id": self.org_id,
                "entity_type": self.spec.name,
                "entity_id": values["id"],
                "entity_label": _label(values)[:255],
                "action": "created",
                "changes": changes,
                "actor_id": self.actor.user_id,
                "created_at": now,
            }
            for values in new_rows
        ]

    def _insert_values(self, row: Row) -> dict[str, Any]:
        values = {k: v for k, v in row.values.items() if not k.startswith("_")}
        values.update(id=uuid.uuid4(), org_id=self.org_id, import_id=self.import_id)
        if hasattr(self.model, "custom"):
            values["custom"] = row.values.get("_custom") or None
        values.setdefault("owner_id", self.actor.user_id)
        if values.get("owner_id") is None:
            values["owner_id"] = self.actor.user_id
        if self.spec.name == "deal":
            stage: StageInfo = row.values["_stage"]
            deal = Deal(status="open", lost_reason=values.get("lost_reason"))
            apply_stage(deal, stage, lost_reason=values.get("lost_reason"))
            values.update(
                stage_id=deal.stage_id,
                pipeline_id=deal.pipeline_id,
                status=deal.status,
                closed_at=deal.closed_at,
                stage_changed_at=deal.stage_changed_at,
                lost_reason=deal.lost_reason,
                position=self._top(stage.id),
            )
        for key in RELATION_FIELDS - {"stage_id"}:
            if hasattr(self.model, key):
                values.setdefault(key, None)
        return values

    def _top(self, stage_id: uuid.UUID) -> float:
        """A position above every card of the stage (new deals go to the top of their column)."""
        top = self.tops.get(stage_id, 0.0) - 1.0
        self.tops[stage_id] = top
        return top

    def _update(self, row: Row, tag_ids: dict[str, uuid.UUID], links: list[dict[str, Any]]) -> None:
        record = row.existing
        changes: dict[str, list[Any]] = {}
        for name, value in row.values.items():
            if name.startswith("_") or name in ("completed_at",):
                continue
            old = getattr(record, name)
            if old != value:
                changes[name] = [jsonable(old), jsonable(value)]
                setattr(record, name, value)
        if row.values.get("_custom"):  # the custom values given; the others stay
            old_custom = dict(record.custom or {})
            new_custom = {**old_custom, **row.values["_custom"]}
            if new_custom != old_custom:
                changes["custom"] = [old_custom or None, new_custom]
                record.custom = new_custom
        added: list[str] = []
        if row.tags and self.spec.entity.tag_table is not None:
            table = self.spec.entity.tag_table
            column = self.spec.entity.tag_column
            have = set(self.session.scalars(select(table.c.tag_id).where(table.c[column] == record.id)))
            for tag in dict.fromkeys(t.lower() for t in row.tags):
                if tag_ids[tag] not in have:
                    links.append({column: record.id, "tag_id": tag_ids[tag]})
                    added.append(str(tag_ids[tag]))
        if changes or added:
            self.session.add(
                ImportUpdate(
                    org_id=self.org_id,
                    import_id=self.import_id,
                    record_id=record.id,
                    previous={"fields": changes, "added_tags": added},
                )
            )
        self.session.flush()

    def _tags(self, rows: Iterable[Row]) -> dict[str, uuid.UUID]:
        """The ids of the tags the rows name (lower-cased name -> id); missing tags are created."""
        wanted = {t.lower(): t for r in rows for t in r.tags}
        if not wanted:
            return {}
        found: dict[str, uuid.UUID] = {}
        deleted: list[uuid.UUID] = []
        for tag_id, name, deleted_at in self.session.execute(
            select(Tag.id, Tag.name, Tag.deleted_at)
            .where(Tag.org_id == self.org_id, func.lower(Tag.name).in_(sorted(wanted)))
            .execution_options(include_deleted=True)
        ):
            found.setdefault(name.lower(), tag_id)
            if deleted_at is not None:
                deleted.append(tag_id)
        if deleted:  # a tag in the trash that the file names comes back
            self.session.execute(
                update(Tag)
                .where(Tag.org_id == self.org_id, Tag.id.in_(deleted))
                .values(deleted_at=None, deleted_by_id=None)
            )
        new: list[dict[str, Any]] = [
            {"id": uuid.uuid4(), "org_id": self.org_id, "name": wanted[k]} for k in wanted if k not in found
        ]
        if new:
            insert_rows(self.session, Tag.__table__, new)
            found.update({t["name"].lower(): t["id"] for t in new})
        return found

    def _progress(self, rows: list[Row]) -> None:
        job = self.job
        assert job is not None
        out = self.outcome
        job.rows_done = out.rows
        job.created_count = out.created
        job.updated_count = out.updated
        job.skipped_count = out.skipped
        job.error_count = out.errors
        self.session.commit()


def run_progress(job: Import, now: datetime | None = None) -> tuple[float, float | None]:
    """(rows per second, seconds left) of a running import."""
    if job.started_at is None or not job.rows_done:
        return 0.0, None
    elapsed = max(((now or utcnow()) - job.started_at).total_seconds(), 0.001)
    rate = job.rows_done / elapsed
    left = max(job.total_rows - job.rows_done, 0) / rate if rate else None
    return rate, left


def errors_csv_rows(path: str) -> Iterator[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        yield from csv.reader(f)


__all__ = [
    "FileInfo",
    "ImportService",
    "Options",
    "Outcome",
    "UnreadableFile",
    "run_progress",
]
