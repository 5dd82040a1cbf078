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
