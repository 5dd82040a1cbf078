"""`make bench` rewrites only the generated section of docs/benchmarks.md (bench/run.py)."""

from bench.run import BEGIN_MARK, DEFAULT_OUTPUT, END_MARK, write_report


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
