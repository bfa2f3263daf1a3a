"""Streaming readers for authority list files: CSV, a JSON array, JSON lines.

A court's list can have millions of rows, so no reader holds more than one
row (and a bounded read buffer): CSV through the csv module over a UTF-8
text wrapper, a JSON array through ijson's incremental parser, JSON lines
one line at a time. Every byte read is counted and hashed on the way
(``CountingReader``), which gives the progress display its position and the
audit record the file's SHA-256 without a second pass.

A row that cannot be read (a CSV row with the wrong number of fields, a
JSON line that is not an object) is handed on as a ``BadRow`` and refused
like any other row; a file that cannot be read at all (not UTF-8, a JSON
array that breaks off) raises ``ImportFileError`` with one line.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterator

import ijson

from registry.importer import ImportProblem

FORMATS = ("csv", "json", "jsonl")
DELIMITERS = (",", ";", "\t", "|")
#: Longest JSON line or CSV field read; a longer one is a broken file, not a row.
MAX_LINE_BYTES = 1024 * 1024
#: Most columns a file may have.
MAX_COLUMNS = 200
#: How much of the file format detection looks at.
SNIFF_BYTES = 64 * 1024


class ImportFileError(ImportProblem):
    code = "bad_import_file"


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read as a record; the reason becomes its refusal."""

    reason: str


class CountingReader(io.RawIOBase):
    """A binary stream that counts and hashes every byte read through it."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.position = 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.position += n
        self.sha256.update(data)
        return n

    def drain(self) -> None:
        """Read what a parser left (trailing whitespace), so the hash covers the whole file."""
        while self.read(1024 * 1024):
            pass


def detect_format(name: str, head: bytes) -> str:
    """csv, json (an array) or jsonl, from the content's first character and then the file name.

    Refuses what is plainly not CSV or JSON text: NUL bytes, or bytes that
    are not UTF-8.
    """
    if not head.strip():
        raise ImportFileError("the file is empty")
    if b"\x00" in head:
        raise ImportFileError("the file is binary, not CSV or JSON text")
    try:
        codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is not UTF-8 text (byte {exc.start} cannot be read)") from None
    first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    lower = name.lower()
    if lower.endswith((".json", ".jsonl", ".ndjson")):
        raise ImportFileError("the file is named as JSON but does not start with [ or {")
    return "csv"


def detect_delimiter(head: bytes) -> str:
    """The CSV delimiter: whichever candidate the header line holds most of (a comma when none)."""
    line = head.decode("utf-8-sig", errors="replace").splitlines()[0] if head.strip() else ""
    counts = {d: line.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_rows(stream: CountingReader, file_format: str, *, delimiter: str = ",") -> Iterator[tuple[int, Any]]:
    """(row number, record or BadRow) for every data row; CSV and JSON lines number rows by line."""
    if file_format == "csv":
        return _csv_rows(stream, delimiter)
    if file_format == "json":
        return _json_array_rows(stream)
    if file_format == "jsonl":
        return _json_line_rows(stream)
    raise ImportFileError(f"format {file_format!r} is not one of {', '.join(FORMATS)}")


def header_columns(stream: CountingReader, file_format: str, *, delimiter: str = ",",
                   sample_rows: int = 50) -> list[str]:
    """The file's column names: the CSV header, or the keys of the first JSON objects in order of appearance."""
    if file_format == "csv":
        return _csv_header(_text(stream), delimiter)[1]
    columns: dict[str, None] = {}
    for i, (_, record) in enumerate(read_rows(stream, file_format)):
        if isinstance(record, dict):
            columns.update(dict.fromkeys(record))
        if i + 1 >= sample_rows or len(columns) > MAX_COLUMNS:
            break
    if not columns:
        raise ImportFileError("the file has no JSON object to take column names from")
    return list(columns)[:MAX_COLUMNS]


def _text(stream: CountingReader) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BufferedReader(stream, 256 * 1024), encoding="utf-8-sig", newline="")


def _csv_header(text: io.TextIOWrapper, delimiter: str):
    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except UnicodeDecodeError:
        raise ImportFileError("the file is not UTF-8 text (within its first 256 KiB)") from None
    except csv.Error as exc:
        raise ImportFileError(f"the header line cannot be read: {_reason(exc)}") from None
    if not header or not any(h.strip() for h in header):
        raise ImportFileError("the file is empty: a CSV import needs a header line naming its columns")
    names = [h.strip() for h in header]
    if len(names) > MAX_COLUMNS:
        raise ImportFileError(f"the header has {len(names)} columns, more than {MAX_COLUMNS}")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise ImportFileError("the header line has an empty column name")
        if name in seen:
            raise ImportFileError(f"column {name!r} appears twice in the header")
        seen.add(name)
    return reader, names


def _csv_rows(stream: CountingReader, delimiter: str) -> Iterator[tuple[int, Any]]:
    reader, names = _csv_header(_text(stream), delimiter)
    width = len(names)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError:
            raise ImportFileError(f"the file is not UTF-8 text (after line {reader.line_num})") from None
        except csv.Error as exc:
            raise ImportFileError(f"line {reader.line_num}: {_reason(exc)}") from None
        if not any(v.strip() for v in values):
            continue  # a blank line
        if len(values) != width:
            yield reader.line_num, BadRow(f"the row has {len(values)} fields, the header has {width}")
            continue
        yield reader.line_num, dict(zip(names, values))


def _json_array_rows(stream: CountingReader) -> Iterator[tuple[int, Any]]:
    number = 0
    try:
        for item in ijson.items(stream, "item", use_float=True):
            number += 1
            yield number, item if isinstance(item, dict) else BadRow(f"item {number} is not a JSON object")
    except ijson.JSONError as exc:
        raise ImportFileError(f"the JSON breaks off or is malformed after item {number} "
                              f"(byte {stream.position}): {_reason(exc)}") from None
    except UnicodeDecodeError:
        raise ImportFileError(f"the file is not UTF-8 text (near byte {stream.position})") from None
    if number == 0 and stream.position == 0:
        raise ImportFileError("the file is empty")
    stream.drain()


def _json_line_rows(stream: CountingReader) -> Iterator[tuple[int, Any]]:
    buffered = io.BufferedReader(stream, 256 * 1024)
    line_no = 0
    while True:
        raw = buffered.readline(MAX_LINE_BYTES + 1)
        if not raw:
            break
        line_no += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise ImportFileError(f"line {line_no} is longer than {MAX_LINE_BYTES // 1024} KiB")
        if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ImportFileError(f"line {line_no} is not UTF-8 text") from None
        except ValueError as exc:
            yield line_no, BadRow(f"the line is not JSON: {_reason(exc)}")
            continue
        yield line_no, record if isinstance(record, dict) else BadRow("the line is not a JSON object")


def _reason(exc: Exception) -> str:
    """The first line of a parser's message (ijson's run over several lines)."""
    text = str(exc).strip().splitlines()
    return text[0].strip() if text else type(exc).__name__
