"""`make bench` rewrites only the generated section of docs/benchmarks.md (bench/run.py)."""

from bench.run import BEGIN_MARK, DEFAULT_OUTPUT, END_MARK, SQLITE_BEGIN_MARK, SQLITE_END_MARK, write_report


def test_the_generated_table_replaces_only_what_is_between_the_markers(tmp_path):
    current = DEFAULT_OUTPUT.read_text()
    assert current.count(BEGIN_MARK) == 1 and current.count(END_MARK) == 1
    assert current.index(BEGIN_MARK) < current.index(END_MARK)
    copy = tmp_path / "benchmarks.md"
    copy.write_text(current)
    write_report(copy, "| page | new table |\n")
    head, rest = current.split(BEGIN_MARK)
    tail = rest.split(END_MARK)[1]
    assert copy.read_text() == f"{head}{BEGIN_MARK}\n| page | new table |\n{END_MARK}{tail}"


def test_the_sqlite_table_has_its_own_section(tmp_path):
    current = DEFAULT_OUTPUT.read_text()
    assert current.count(SQLITE_BEGIN_MARK) == 1 and current.count(SQLITE_END_MARK) == 1
    copy = tmp_path / "benchmarks.md"
    copy.write_text(current)
    write_report(copy, "| page | sqlite table |\n", SQLITE_BEGIN_MARK, SQLITE_END_MARK)
    head, rest = current.split(SQLITE_BEGIN_MARK)
    tail = rest.split(SQLITE_END_MARK)[1]
    assert copy.read_text() == f"{head}{SQLITE_BEGIN_MARK}\n| page | sqlite table |\n{SQLITE_END_MARK}{tail}"
    assert BEGIN_MARK in head  # the PostgreSQL section is untouched


def test_the_bench_adds_its_custom_fields_and_values_once(app, engine_name):
    """bench/run.ensure_custom_fields: 10 fields on contacts and 5 on deals, values of their types on a
    share of the rows (set-based SQL on either engine), and nothing redone on a second run."""
    from sqlalchemy import select, text

    from bench.run import CUSTOM_FIELDS, ensure_custom_fields
    from crm_web.custom_fields import converts
    from crm_web.extensions import db
    from crm_web.models import Contact, Deal
    from crm_web.services.custom_fields import entity_fields, index_name
    from tests import factories

    org = factories.make_org("bench")
    factories.make_user(org, role="admin")
    for _ in range(60):
        factories.make_contact(org)
    for _ in range(20):
        factories.make_deal(org)
    sqlite = engine_name == "sqlite"
    assert ensure_custom_fields(org, sqlite=sqlite) == ["contacts", "deals"]
    db.session.expire_all()
    for model, table in ((Contact, "contacts"), (Deal, "deals")):
        fields = entity_fields(db.session, org.id, table[:-1])
        assert [(cf.label, cf.type) for cf in fields] == [(label, kind) for label, kind, _o, _s in CUSTOM_FIELDS[table]]
        by_key = {cf.key: cf for cf in fields}
        values = db.session.scalars(select(model.custom).where(model.org_id == org.id)).all()
        assert all(values)
        for custom in values:
            assert set(custom) <= set(by_key)
            assert all(converts(value, by_key[key]) for key, value in custom.items()), custom
            # Options are the field's own ids.
            for key, value in custom.items():
                if by_key[key].type == "select":
                    assert by_key[key].option(value) is not None
        # Every field with a share below 1 leaves some rows without a value; a share of 1 fills all.
        for label, _kind, _options, share in CUSTOM_FIELDS[table]:
            key = next(cf.key for cf in fields if cf.label == label)
            have = sum(key in custom for custom in values)
            assert have == len(values) if share == 1 else 0 < have <= len(values)
        if not sqlite:
            names = set(db.session.scalars(text("SELECT indexname FROM pg_indexes WHERE tablename = :t"), {"t": table}))
            assert {index_name(org.id, cf) for cf in fields} <= names
    before = db.session.scalars(select(Contact.custom).where(Contact.org_id == org.id).order_by(Contact.id)).all()
    assert ensure_custom_fields(org, sqlite=sqlite) == []
    db.session.expire_all()
    assert len(entity_fields(db.session, org.id, "contact")) == 10
    assert (
        db.session.scalars(select(Contact.custom).where(Contact.org_id == org.id).order_by(Contact.id)).all() == before
    )
