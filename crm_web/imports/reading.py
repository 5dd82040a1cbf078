"""Reading a CSV file nobody described: its encoding, delimiter, header and rows, streamed.

- Encoding: a byte order mark (UTF-8, UTF-16) decides; else UTF-8 if the start of the file is valid
  UTF-8; else charset-normalizer's best guess (Windows-1252 / Latin-1 and the like). A file with NUL
  bytes and no UTF-16 mark is binary, not CSV.
- Delimiter: csv.Sniffer over comma, semicolon, tab and pipe, checked against the header line (the
  sniffer can be fooled by quoted text); else the candidate the header line holds most of.
- Rows: the csv module's reader (quoted fields with newlines and delimiters inside), one at a time,
  each with the line it starts on, so every message names its line.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

MAX_BYTES = 50 * 1024 * 1024
MAX_ROWS = 200_000
SAMPLE_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
MAX_FIELD = 1024 * 1024  # one cell, at most (the csv module's default is 128 KiB)


class UnreadableFile(Exception):
    """The file cannot be read as CSV: the message says why, and where when it knows."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message if line is None else f"Line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class CsvFormat:
    encoding: str
    delimiter: str

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))


def check_size(size: int) -> None:
    """Refuse a file over the limit before reading it."""
    if size > MAX_BYTES:
        raise UnreadableFile(
            f"The file is {size / 1024 / 1024:.0f} MB; an import takes at most {MAX_BYTES // 1024 // 1024} MB."
        )


def detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in sample:
        raise UnreadableFile("This is not a text file (it holds binary data): export it as CSV and try again.")
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as error:
        if error.start >= len(sample) - 3 and len(sample) == SAMPLE_BYTES:
            return "utf-8"  # a character cut at the end of the sample
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise UnreadableFile("The file's encoding could not be recognised: save it as UTF-8 CSV and try again.")
    encoding = best.encoding
    # Windows-1252 is Latin-1 plus printable characters where Latin-1 has control codes: prefer it.
    return "cp1252" if encoding in ("latin_1", "iso8859_1", "iso8859_15") else encoding


SNIFF_LINES = 20  # the sniffer's regular expressions are slow on long samples: a few lines suffice


def detect_delimiter(text: str) -> str:
    lines = text.splitlines()
    first_line = next(iter(lines), "")
    present = [d for d in DELIMITERS if d in first_line]
    if len(present) == 1:  # the header names one candidate only: no need to guess
        return present[0]
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines[:SNIFF_LINES])[:8192], delimiters=DELIMITERS).delimiter
        if sniffed in first_line:
            return sniffed
    except csv.Error:
        pass
    counts = {d: first_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def detect_format(path: str | os.PathLike[str]) -> CsvFormat:
    with open(path, "rb") as raw:
        sample = raw.read(SAMPLE_BYTES)
    if not sample.strip():
        raise UnreadableFile("The file is empty.")
    encoding = detect_encoding(sample)
    text = sample.decode(encoding, errors="ignore")
    if not text.strip("\ufeff \r\n\t"):
        raise UnreadableFile("The file is empty.")
    # Sniff complete lines only: the sample may end in the middle of one.
    cut = text.rfind("\n")
    return CsvFormat(encoding=encoding, delimiter=detect_delimiter(text[:cut] if cut > 0 else text))


class CsvReader:
    """The header and the rows of one file, read as it goes (one pass; `rows()` once)."""

    def __init__(self, path: str | os.PathLike[str], fmt: CsvFormat | None = None):
        self.path = path
        self.format = fmt or detect_format(path)
        csv.field_size_limit(MAX_FIELD)
        self._file = open(path, encoding=self.format.encoding, newline="")  # noqa: SIM115 (closed by close())
        self._reader = csv.reader(self._file, delimiter=self.format.delimiter)
        header = self._next()
        if header is None or not any(cell.strip() for cell in header):
            self.close()
            raise UnreadableFile("The file has no header row.", 1)
        self.header = [cell.strip().lstrip("\ufeff") for cell in header]

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise UnreadableFile(
                f"A character cannot be read as {self.format.encoding}: save the file as UTF-8 and try again.",
                self._reader.line_num + 1,
            ) from None
        except csv.Error as error:
            raise UnreadableFile(f"The CSV is malformed ({error}).", self._reader.line_num) from None

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line the row starts on, cells) for each non-blank row after the header."""
        count = 0
        while True:
            line = self._reader.line_num + 1
            row = self._next()
            if row is None:
                return
            if not any(cell.strip() for cell in row):
                continue
            count += 1
            if count > MAX_ROWS:
                raise UnreadableFile(f"The file has more than {MAX_ROWS:,} rows; split it and import each part.", line)
            yield line, row

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_rows(path: str | os.PathLike[str], fmt: CsvFormat) -> int:
    """How many data rows the file has (the progress bar's 100 %)."""
    with CsvReader(path, fmt) as reader:
        return sum(1 for _ in reader.rows())


def read_text(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
