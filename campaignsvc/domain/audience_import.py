"""Turning an uploaded CSV file or a pasted username list into contact rows (original-v1 §4.13, SPEC R-LIFE-3).

Pure: no I/O. The CSV reader follows RFC 4180 (quoted fields may hold delimiters, line breaks and ``""``
escaped quotes) and is lenient where files in the wild are not: a BOM, CRLF / LF / CR line ends, ``,``
``;`` or tab as delimiter (detected from the first record), stray quotes inside unquoted fields. A row it
cannot use is counted and sampled, never fatal.

Columns come from the header names when there is a header, else from what the cells look like (a column
of digits is the Telegram id, ``@name`` or a t.me link the username, ``a@b.c`` the email; the first other
text columns are first and last name). Rows are deduplicated by Telegram id, username and email.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence

import attrs

DELIMITERS = (",", ";", "\t")
MAX_SAMPLES = 10
MAX_NAME = 255
MAX_EMAIL = 255
MAX_PHONE = 50
MAX_TELEGRAM_ID = 20
DEFAULT_FIRST_NAME = "Contact"
IDENTIFIERS = ("telegram_id", "username", "email")

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NEEDS_QUOTES = re.compile('[",;\t\r\n]')
_QUOTED = re.compile(r'"([^"]*(?:""[^"]*)*)"')
_DIGITS = re.compile(r"\d{1,20}")
_EXCEL_NUMBER = re.compile(r"(\d{1,20})\.0+")
_USERNAME = re.compile(r"[A-Za-z0-9_]{5,32}")
_LINK = re.compile(r"(?:https?://)?(?:www\.)?(?:t\.me|telegram\.me|telegram\.dog)/([^/?#\s]+)/?", re.I)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_PHONE = re.compile(r"\+?[\d\s().-]{5,}")
_HEADER_SEPARATORS = re.compile(r"[\s\-.]+")
_NOT_A_FORMULA = re.compile(r"\+[\d\s()-]+|-?\d+(?:[.,]\d+)?")

HEADER_ALIASES = {
    "telegram_id": ("telegram_id", "telegram", "tg_id", "tg", "telegram_user_id", "tg_user_id", "телеграм"),
    "username": ("username", "telegram_username", "tg_username", "user_name", "nick", "nickname", "ник"),
    "email": ("email", "e_mail", "mail", "почта"),
    "phone": ("phone", "phone_number", "mobile", "tel", "telephone", "телефон"),
    "first_name": ("first_name", "firstname", "first", "name", "full_name", "fullname", "contact", "имя"),
    "last_name": ("last_name", "lastname", "surname", "фамилия"),
}
_FIELD_OF_HEADER = {alias: field for field, aliases in HEADER_ALIASES.items() for alias in aliases}


@attrs.frozen
class Record:
    """One CSV record: its first physical line (1-based) and its raw fields, or why it is unreadable."""

    line: int
    fields: tuple[str, ...]
    error: str | None = None


@attrs.frozen
class ContactRow:
    line: int
    first_name: str
    last_name: str | None = None
    telegram_id: str | None = None
    username: str | None = None  # lower case, without "@"
    email: str | None = None  # lower case
    phone: str | None = None

    def identifiers(self) -> list[tuple[str, str]]:
        return [(name, value) for name in IDENTIFIERS if (value := getattr(self, name))]


@attrs.frozen
class ImportPlan:
    """Valid rows (deduplicated, in file order), how many rows were invalid, and a sample of why."""

    rows: tuple[ContactRow, ...]
    invalid: int
    samples: tuple[str, ...]
    duplicates: int


# --- RFC 4180 -----------------------------------------------------------------------------------------


def detect_delimiter(text: str) -> str:
    """The delimiter with the most occurrences outside quotes in the first non-blank record (``,`` on a tie)."""
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    seen_content = False
    for ch in text[:65_536].lstrip("\ufeff"):
        if ch == '"':
            in_quotes = not in_quotes
        elif in_quotes:
            continue
        elif ch in "\r\n":
            if seen_content:
                break
        elif ch in counts:
            counts[ch] += 1
        if not ch.isspace():
            seen_content = True
    return max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))


def read_records(text: str, delimiter: str | None = None) -> Iterator[Record]:
    """The records of ``text`` with their raw fields; a blank line is the record ``("",)``.

    An unterminated quoted field makes its record unreadable; reading resumes on the next line."""
    text = text.removeprefix("\ufeff")
    d = delimiter or detect_delimiter(text)
    unquoted = re.compile(f"[^{re.escape(d)}\r\n]*")
    pos, line, end = 0, 1, len(text)
    while pos < end:
        brk = _LINE_BREAK.search(text, pos)
        stop = brk.start() if brk else end
        if '"' not in text[pos:stop]:  # the common case: a line without quotes
            yield Record(line, tuple(text[pos:stop].split(d)))
            pos, line = (brk.end(), line + 1) if brk else (end, line)
            continue
        fields, next_pos, next_line = _read_quoted_record(text, pos, line, d, unquoted)
        if fields is None:
            yield Record(line, (), error="unterminated quoted field")
            pos, line = (brk.end(), line + 1) if brk else (end, line)
        else:
            yield Record(line, fields)
            pos, line = next_pos, next_line


def _read_quoted_record(
    text: str, pos: int, line: int, d: str, unquoted: re.Pattern[str]
) -> tuple[tuple[str, ...] | None, int, int]:
    """The fields of the record at ``pos`` and where the next one starts; None when a quote is unterminated."""
    fields: list[str] = []
    end = len(text)
    while True:
        value = ""
        if pos < end and text[pos] == '"':
            quoted = _QUOTED.match(text, pos)
            if quoted is None:
                return None, pos, line
            line += len(_LINE_BREAK.findall(quoted.group(0)))
            value, pos = quoted.group(1).replace('""', '"'), quoted.end()
        tail = unquoted.match(text, pos)
        assert tail is not None  # the pattern matches the empty string
        fields.append(value + tail.group(0))  # text after a closing quote is kept as it is
        pos = tail.end()
        if pos < end and text[pos] == d:
            pos += 1
            continue
        brk = _LINE_BREAK.match(text, pos)
        return tuple(fields), (brk.end() if brk else end), (line + 1 if brk else line)


def quote_field(value: str) -> str:
    """``value`` quoted when it holds a quote, a line break or any of the delimiters (so that the
    delimiter of a file this module writes is never ambiguous to :func:`detect_delimiter`)."""
    if value and (_NEEDS_QUOTES.search(value) or value[0] == "\ufeff"):
        return '"' + value.replace('"', '""') + '"'
    return value


def format_record(fields: Iterable[str], delimiter: str = ",") -> str:
    """One RFC 4180 record with its CRLF line end."""
    return delimiter.join(quote_field(f) for f in fields) + "\r\n"


def spreadsheet_safe(value: str) -> str:
    """``value`` for a cell a spreadsheet will open: text starting like a formula gets a leading ``'``
    (phone numbers and signed numbers are left alone)."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NOT_A_FORMULA.fullmatch(value):
        return "'" + value
    return value


# --- cell values --------------------------------------------------------------------------------------


def clean_text(value: str, limit: int = MAX_NAME) -> str | None:
    text = " ".join(value.split())
    return text[:limit] or None


def telegram_id_of(value: str) -> str | None:
    value = value.strip().lstrip("@")
    excel = _EXCEL_NUMBER.fullmatch(value)
    if excel:
        value = excel.group(1)
    return value if _DIGITS.fullmatch(value) else None


def bare_username(value: str) -> str:
    """The username as typed, without ``@`` and t.me link."""
    value = value.strip()
    link = _LINK.fullmatch(value)
    return (link.group(1) if link else value).lstrip("@")


def username_of(value: str) -> str | None:
    bare = bare_username(value)
    return bare.lower() if _USERNAME.fullmatch(bare) and not bare.isdigit() else None


def email_of(value: str) -> str | None:
    value = value.strip()
    return value.lower() if len(value) <= MAX_EMAIL and _EMAIL.fullmatch(value) else None


def phone_of(value: str) -> str | None:
    value = " ".join(value.split())
    return value if len(value) <= MAX_PHONE and _PHONE.fullmatch(value) else None


def _kind(cell: str) -> str | None:
    """What a cell looks like, for columns without a header."""
    cell = cell.strip()
    if not cell:
        return None
    if telegram_id_of(cell) and not cell.startswith("@"):
        return "telegram_id"
    if (cell.startswith("@") or _LINK.fullmatch(cell)) and username_of(cell):
        return "username"
    if email_of(cell):
        return "email"
    if cell[0] == "+" and phone_of(cell):
        return "phone"
    if username_of(cell) and ("_" in cell or sum(ch.isdigit() for ch in cell) >= 2):
        return "handle"  # a bare username such as ivan_petrov or john1990: names rarely look like that
    return "text"


# --- columns ------------------------------------------------------------------------------------------


def _header_key(name: str) -> str:
    return _HEADER_SEPARATORS.sub("_", name.strip().strip('"').lower()).strip("_")


def header_columns(header: Sequence[str]) -> dict[str, int]:
    """Field → column index from header names (the first column of each field wins)."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        field = _FIELD_OF_HEADER.get(_header_key(name))
        if field and field not in columns:
            columns[field] = index
    return columns


def detect_columns(records: Sequence[Record], sample: int = 500) -> dict[str, int]:
    """Field → column index judged from the cells: a column is of a kind when at least half of its
    non-empty cells are; digits columns after the first are phones; the first two text columns are the
    first and last name. A single column without identifiers is read as usernames."""
    width = max((len(r.fields) for r in records[:sample]), default=0)
    kinds: list[str | None] = []
    for index in range(width):
        cells = [_kind(r.fields[index]) for r in records[:sample] if index < len(r.fields)]
        seen = [k for k in cells if k]
        best = max(sorted(set(seen)), key=seen.count) if seen else None
        kinds.append(None if best is None else best if seen.count(best) * 2 >= len(seen) else "text")
    columns: dict[str, int] = {}
    texts = ["first_name", "last_name"]
    for index, kind in enumerate(kinds):
        if kind is None:
            continue
        if kind == "handle":
            kind = "username" if "username" not in columns else "text"
        if kind == "telegram_id" and "telegram_id" in columns:
            kind = "phone"
        if kind == "text":
            if texts:
                columns[texts.pop(0)] = index
        elif kind not in columns:
            columns[kind] = index
    if width == 1 and not any(f in columns for f in IDENTIFIERS):
        columns = {"username": 0}
    return columns


# --- rows ---------------------------------------------------------------------------------------------


def contact_of(record: Record, columns: dict[str, int]) -> ContactRow | str:
    """The contact a record describes, or the reason it describes none."""

    def cell(field: str) -> str:
        index = columns.get(field)
        return record.fields[index] if index is not None and index < len(record.fields) else ""

    raw_tg, raw_user, raw_email = cell("telegram_id").strip(), cell("username").strip(), cell("email").strip()
    telegram_id = telegram_id_of(raw_tg) if raw_tg else None
    username = username_of(raw_user) if raw_user else None
    shown = raw_user
    if raw_tg and telegram_id is None and username is None and username_of(raw_tg):
        username, shown = username_of(raw_tg), raw_tg  # a "telegram" column holding @names
    if raw_user and username is None and telegram_id is None:
        telegram_id = telegram_id_of(raw_user)  # digits in a username column
    email = email_of(raw_email) if raw_email else None
    if not (telegram_id or username or email):
        bad = [
            f"invalid {label} {value[:40]!r}"
            for label, value in (("telegram id", raw_tg), ("username", raw_user), ("email", raw_email))
            if value
        ]
        return bad[0] if bad else "no telegram id, username or email"
    first = clean_text(cell("first_name"))
    return ContactRow(
        line=record.line,
        first_name=first or (bare_username(shown)[:MAX_NAME] if username else DEFAULT_FIRST_NAME),
        last_name=clean_text(cell("last_name")),
        telegram_id=telegram_id,
        username=username,
        email=email,
        phone=phone_of(cell("phone")),
    )


class _Collector:
    """Deduplicates rows by any shared identifier and samples the invalid ones."""

    def __init__(self) -> None:
        self.rows: list[ContactRow] = []
        self.keys: set[tuple[str, str]] = set()
        self.invalid = 0
        self.duplicates = 0
        self.samples: list[str] = []

    def add(self, row: ContactRow) -> None:
        keys = row.identifiers()
        if any(k in self.keys for k in keys):
            self.duplicates += 1
            return
        self.keys.update(keys)
        self.rows.append(row)

    def reject(self, sample: str) -> None:
        self.invalid += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(sample)

    def plan(self) -> ImportPlan:
        return ImportPlan(tuple(self.rows), self.invalid, tuple(self.samples), self.duplicates)


def _blank(record: Record) -> bool:
    return record.error is None and not any(f.strip() for f in record.fields)


def _is_header(record: Record) -> bool:
    """Names an identifier column and holds no identifier value."""
    return bool(set(header_columns(record.fields)) & set(IDENTIFIERS)) and not any(
        _kind(f) in ("telegram_id", "username", "email") for f in record.fields
    )


class TooManyRows(ValueError):
    """The input holds more data rows than one import accepts (``CSV_IMPORT_MAX_ROWS``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} rows")
        self.limit = limit


def _bounded(items: Iterable[Record], max_rows: int | None) -> Iterator[Record]:
    """The data rows as they are read; the parse stops at the first row past the limit."""
    for count, item in enumerate(items, start=1):
        if max_rows is not None and count > max_rows:
            raise TooManyRows(max_rows)
        yield item


def _layout(records: list[Record], has_header: bool) -> tuple[dict[str, int], list[Record]]:
    """The columns to read and the records holding data. ``has_header`` is a hint: a first row that names
    known columns is a header either way, and a "header" that names no identifier column but reads as
    data is data."""
    first = records[0] if records and records[0].error is None else None
    if first is not None and (has_header or _is_header(first)):
        columns = header_columns(first.fields)
        if set(columns) & set(IDENTIFIERS):
            if "first_name" not in columns and 0 not in columns.values():
                columns["first_name"] = 0  # the original's default name column
            return columns, records[1:]
    columns = detect_columns([r for r in records if r.error is None])
    if has_header and first is not None and not isinstance(contact_of(first, columns), ContactRow):
        return columns, records[1:]
    return columns, records


_LAYOUT_SAMPLE = 500  # the error-free records detect_columns judges from


def parse_contacts_csv(content: str, *, has_header: bool = True, max_rows: int | None = None) -> ImportPlan:
    """Records are read as a stream: only the first ones are held to decide the layout, and a file with
    more than ``max_rows`` data rows raises :class:`TooManyRows` as soon as the row after the limit is
    read."""
    records = (r for r in read_records(content) if not _blank(r))
    head: list[Record] = []
    readable = 0
    for record in records:
        head.append(record)
        readable += record.error is None
        if readable >= _LAYOUT_SAMPLE:
            break
    columns, head_data = _layout(head, has_header)
    data = _bounded(itertools.chain(head_data, records), max_rows)
    out = _Collector()
    for record in data:
        if record.error is not None:
            out.reject(f"line {record.line}: {record.error}")
            continue
        row = contact_of(record, columns)
        if isinstance(row, str):
            out.reject(f"line {record.line}: {row}")
        else:
            out.add(row)
    return out.plan()


def parse_username_list(text: str, *, max_rows: int | None = None) -> ImportPlan:
    """One username or Telegram id per line (commas and semicolons also separate); ``@`` and t.me links
    are accepted. Invalid tokens are sampled as typed (at most 64 characters each). More than
    ``max_rows`` tokens raise :class:`TooManyRows`."""
    out = _Collector()
    tokens = 0
    for number, line in enumerate(_LINE_BREAK.split(text.removeprefix("\ufeff")), start=1):
        for raw in re.split(r"[,;]", line):
            token = raw.strip()
            if not token:
                continue
            tokens += 1
            if max_rows is not None and tokens > max_rows:
                raise TooManyRows(max_rows)
            telegram_id = telegram_id_of(token)
            username = None if telegram_id else username_of(token)
            if telegram_id is None and username is None:
                out.reject(token[:64])
                continue
            name = DEFAULT_FIRST_NAME if telegram_id else bare_username(token)[:80]
            out.add(ContactRow(line=number, first_name=name, telegram_id=telegram_id, username=username))
    return out.plan()
