"""SensorThings API 1.1 query options ($filter, $expand, $select, $orderby, $top, $skip, $count,
$resultFormat) parsed to a small AST and compiled to PostgreSQL/PostGIS SQL, so that routes never
build SQL from request text: every literal becomes a bind value, every identifier comes from the
caller's resolver.

Error messages name the option and a 1-based character position within that option's value, e.g.
``$filter: at 14, expected a value after 'eq', found the end``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any, NoReturn, TypeAlias

from cim.errors import InvalidInput

FIELD_KINDS = frozenset({"number", "text", "time", "bool", "geometry", "json", "result"})


@dataclass(frozen=True)
class Field:
    """What a property path means in SQL, so the compiler can type-check and cast around it.

    `nullable=False` lets $orderby drop its NULLS FIRST/LAST clause, which keeps a plain b-tree
    index on the column usable for `ORDER BY ... DESC`.
    """

    sql: str
    kind: str
    json_sql: str | None = None
    nullable: bool = True

    def __post_init__(self) -> None:
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"Field kind {self.kind!r} is not one of {sorted(FIELD_KINDS)}")


Resolver = Callable[[tuple[str, ...]], Field]


@dataclass(frozen=True)
class Literal:
    """A constant: kind is number, text, time, date, timeofday, duration, geometry, bool or null."""

    value: Any
    kind: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Property:
    """A property path such as ("Datastream", "Thing", "name"); `@iot.id` is spelled "id"."""

    path: tuple[str, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    """A function call; the name is lower-case (geo.distance, st_within, substringof, ...)."""

    name: str
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Unary:
    """`not x` or `-x` (op "not" or "neg")."""

    op: str
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Binary:
    """A logical, comparison or arithmetic operator, with its OData name (eq, and, add, ...)."""

    op: str
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


Node: TypeAlias = Literal | Property | Call | Unary | Binary


@dataclass
class QueryOptions:
    """The parsed system query options of one request, or of one level of $expand."""

    filter: Node | None = None
    expand: list[Expand] = field(default_factory=list)
    select: list[str] | None = None
    orderby: list[tuple[Node, str]] = field(default_factory=list)
    top: int | None = None
    skip: int = 0
    count: bool = False
    result_format: str | None = None
    raw: dict[str, str] = field(default_factory=dict, compare=False)  # as given, for next links


@dataclass
class Expand:
    """One $expand item: a navigation path and the options in its parentheses."""

    path: list[str]
    options: QueryOptions = field(default_factory=QueryOptions)


# ---------------------------------------------------------------------------------------------
# Lexing

_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMEOFDAY = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_.@]*")
_DURATION = re.compile(
    r"-?P(?=[0-9]|T[0-9])(?:[0-9]+Y)?(?:[0-9]+M)?(?:[0-9]+W)?(?:[0-9]+D)?"
    r"(?:T(?=[0-9])(?:[0-9]+H)?(?:[0-9]+M)?(?:[0-9]+(?:\.[0-9]+)?S)?)?",
    re.IGNORECASE,
)
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@'")
_TYPED_PREFIXES = ("duration", "geography", "geometry")


@dataclass(frozen=True)
class _Token:
    kind: str  # name string number datetime date timeofday duration geometry ( ) , / : - end
    text: str
    pos: int  # 1-based
    value: Any = None


def _fail(option: str, pos: int, message: str) -> NoReturn:
    raise InvalidInput(f"{option}: at {pos}, {message}")


def _describe(tok: _Token) -> str:
    return "the end" if tok.kind == "end" else f"'{tok.text}'"


def _read_string(text: str, start: int, option: str, base: int = 0) -> tuple[str, int]:
    """The value of the quoted string at `start` ('' is a quote) and the index after it; `base`
    is where `text` starts within the option's value, for the error position."""
    parts, j = [], start + 1
    while True:
        k = text.find("'", j)
        if k == -1:
            _fail(option, base + start + 1, "the string that starts here is not closed with '")
        if text.startswith("''", k):
            parts.append(text[j : k + 1])
            j = k + 2
            continue
        parts.append(text[j:k])
        return "".join(parts), k + 1


def parse_datetime(text: str) -> datetime | None:
    """An aware datetime from an ISO 8601 date-time or date (UTC when no offset is given)."""
    if not (_DATETIME.fullmatch(text) or _DATE.fullmatch(text)):
        return None
    try:
        value = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _read_constant(text: str, i: int, option: str) -> tuple[_Token, int]:
    """A number, date-time, date or time of day starting at `i`."""
    pos = i + 1
    for kind, pattern in (
        ("datetime", _DATETIME),
        ("date", _DATE),
        ("timeofday", _TIMEOFDAY),
        ("number", _NUMBER),
    ):
        m = pattern.match(text, i)
        if m and (kind == "number" or text[i] != "-"):
            break
    assert m is not None  # _NUMBER matches any digit, with or without a sign
    raw, end = m.group(), m.end()
    if end < len(text) and text[end] in _WORD_CHARS:
        _fail(option, end + 1, f"unexpected character {text[end]!r} after {raw!r}")
    value: Any
    if kind == "datetime" or kind == "date":
        value = parse_datetime(raw)
        if value is None:
            _fail(option, pos, f"{raw!r} is not a valid date-time")
        if kind == "date":
            value = value.date()
    elif kind == "timeofday":
        try:
            value = time.fromisoformat(raw)
        except ValueError:
            _fail(option, pos, f"{raw!r} is not a valid time of day")
    elif re.fullmatch(r"-?[0-9]+", raw):
        if len(raw) > 40:  # past numeric's usefulness, and int() refuses very long texts
            _fail(option, pos, f"{raw[:20]}... has more than 40 digits")
        value = int(raw)
    else:
        value = float(raw)
        if not math.isfinite(value):
            _fail(option, pos, f"{raw!r} is out of range")
    return _Token(kind, raw, pos, value), end


def _tokens(text: str, option: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        pos = i + 1
        if c.isspace():
            i += 1
        elif c in "(),/:":
            out.append(_Token(c, c, pos))
            i += 1
        elif c == "'":
            value, i = _read_string(text, i, option)
            out.append(_Token("string", text[pos - 1 : i], pos, value))
        elif c in "0123456789" or (c == "-" and _NUMBER.match(text, i)):
            tok, i = _read_constant(text, i, option)
            out.append(tok)
        elif c == "-":
            out.append(_Token("-", "-", pos))
            i += 1
        elif m := _NAME.match(text, i):
            word, i = m.group(), m.end()
            if i < n and text[i] == "'":
                prefix = word.lower()
                if prefix not in _TYPED_PREFIXES:
                    _fail(
                        option,
                        pos,
                        f"unknown literal {word}'...'; expected duration'...', "
                        "geography'...' or geometry'...'",
                    )
                raw, i = _read_string(text, i, option)
                out.append(_typed_literal(prefix, raw, text[pos - 1 : i], pos, option))
            else:
                out.append(_Token("name", word, pos))
        else:
            _fail(option, pos, f"unexpected character {c!r}")
    out.append(_Token("end", "", n + 1))
    return out


def _typed_literal(prefix: str, raw: str, whole: str, pos: int, option: str) -> _Token:
    if prefix == "duration":
        if not _DURATION.fullmatch(raw.strip()):
            _fail(option, pos, f"{whole} is not an ISO 8601 duration like duration'P1DT2H'")
        return _Token("duration", whole, pos, raw.strip().upper())
    try:
        wkt = _check_wkt(raw)
    except ValueError as exc:
        _fail(option, pos, f"{prefix}'...' is not valid WKT: {exc}")
    return _Token("geometry", whole, pos, wkt)


# ---------------------------------------------------------------------------------------------
# WKT: checked here only so an obviously broken literal is a 400 naming the literal, not a
# database error; PostGIS remains the judge of geometric validity.

_WKT_TOKEN = re.compile(
    r"\s*(?:(?P<word>[A-Za-z]+)|(?P<num>[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<punct>[(),]))"
)
_SRID = re.compile(r"\s*SRID\s*=\s*([0-9]+)\s*;", re.IGNORECASE)
# bounds on nesting and on chains of one operator, so hostile input meets InvalidInput rather
# than Python's recursion limit (and/or chains are flattened instead, so they have no bound)
_MAX_DEPTH = 32
_MAX_CHAIN = 64


class _Wkt:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str]] = []
        i = 0
        while i < len(text):
            m = _WKT_TOKEN.match(text, i)
            if not m:
                if text[i:].strip():
                    raise ValueError(f"unexpected {text[i:].strip()[:10]!r}")
                break
            kind = m.lastgroup or ""
            self.items.append((kind, m.group(kind).upper()))
            i = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str]:
        return self.items[self.i] if self.i < len(self.items) else ("end", "")

    def expect(self, text: str) -> None:
        found = self.peek()
        if found[1] != text or found[0] == "end":
            raise ValueError(f"expected '{text}', found {found[1] or 'the end'!r}")
        self.i += 1

    def seq(self, item: Callable[[], None]) -> None:
        self.expect("(")
        item()
        while self.peek() == ("punct", ","):
            self.i += 1
            item()
        self.expect(")")

    def coord(self) -> None:
        count = 0
        while self.peek()[0] == "num":
            self.i += 1
            count += 1
        if not 2 <= count <= 4:
            raise ValueError(f"a position needs 2 to 4 numbers, found {count}")

    def ring(self) -> None:
        self.seq(self.coord)

    def polygon(self) -> None:
        self.seq(self.ring)

    def point_item(self) -> None:
        if self.peek() == ("punct", "("):
            self.seq(self.coord)
        else:
            self.coord()

    def geometry(self, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            raise ValueError(f"geometry collections nest deeper than {_MAX_DEPTH} levels")
        kind, word = self.peek()
        bodies: dict[str, Callable[[], None]] = {
            "POINT": lambda: self.seq(self.coord),
            "LINESTRING": self.ring,
            "POLYGON": self.polygon,
            "MULTIPOINT": lambda: self.seq(self.point_item),
            "MULTILINESTRING": lambda: self.seq(self.ring),
            "MULTIPOLYGON": lambda: self.seq(self.polygon),
            "GEOMETRYCOLLECTION": lambda: self.seq(lambda: self.geometry(depth + 1)),
        }
        if kind != "word" or word not in bodies:
            raise ValueError(f"expected a geometry type such as POINT, found {word or 'nothing'!r}")
        self.i += 1
        if self.peek() in (("word", "Z"), ("word", "M"), ("word", "ZM")):
            self.i += 1
        if self.peek() == ("word", "EMPTY"):
            self.i += 1
            return
        bodies[word]()


def _check_wkt(raw: str) -> str:
    """The WKT of a geography'...'/geometry'...' literal, without its optional SRID=4326; prefix.

    Raises:
        ValueError: the text is not shaped like WKT, or names an SRID other than 4326.
    """
    wkt = raw
    if m := _SRID.match(raw):
        if m.group(1) != "4326":
            raise ValueError(
                f"only SRID=4326 (WGS 84 longitude latitude) is accepted, not {m.group(1)}"
            )
        wkt = raw[m.end() :]
    parser = _Wkt(wkt)
    parser.geometry()
    if parser.peek()[0] != "end":
        raise ValueError(f"unexpected {parser.peek()[1]!r} after the geometry")
    return wkt.strip()


# ---------------------------------------------------------------------------------------------
# Parsing

_PRECEDENCE = (
    frozenset({"or"}),
    frozenset({"and"}),
    frozenset({"eq", "ne", "gt", "ge", "lt", "le"}),
    frozenset({"add", "sub"}),
    frozenset({"mul", "div", "divby", "mod"}),
)
_OPERATORS = frozenset().union(*_PRECEDENCE)
_LITERAL_TOKENS = frozenset(
    {"string", "number", "datetime", "date", "timeofday", "duration", "geometry"}
)
_TOKEN_KIND = {"string": "text", "datetime": "time"}
_GEO_PREDICATES = {
    "geo.intersects": "ST_Intersects",
    "st_equals": "ST_Equals",
    "st_disjoint": "ST_Disjoint",
    "st_touches": "ST_Touches",
    "st_within": "ST_Within",
    "st_overlaps": "ST_Overlaps",
    "st_crosses": "ST_Crosses",
    "st_intersects": "ST_Intersects",
    "st_contains": "ST_Contains",
}
_DATE_PARTS = {
    "year": "YEAR",
    "month": "MONTH",
    "day": "DAY",
    "hour": "HOUR",
    "minute": "MINUTE",
    "second": "SECOND",
    "fractionalseconds": "SECOND",
}
# name: (fewest, most) arguments
_FUNCTIONS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(["substringof", "contains", "startswith", "endswith", "indexof"], (2, 2)),
    **dict.fromkeys(["length", "tolower", "toupper", "trim"], (1, 1)),
    "substring": (2, 3),
    "concat": (2, 2),
    **dict.fromkeys([*_DATE_PARTS, "date", "time", "totaloffsetminutes"], (1, 1)),
    **dict.fromkeys(["now", "mindatetime", "maxdatetime"], (0, 0)),
    **dict.fromkeys(["round", "floor", "ceiling"], (1, 1)),
    "geo.distance": (2, 2),
    "geo.length": (1, 1),
    **dict.fromkeys(_GEO_PREDICATES, (2, 2)),
    "st_relate": (3, 3),
}


class _Parser:
    """Recursive descent over the tokens, one level per OData precedence class."""

    def __init__(self, text: str, option: str) -> None:
        self.option = option
        self.tokens = _tokens(text, option)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok: _Token, message: str) -> NoReturn:
        _fail(self.option, tok.pos, message)

    def word(self, *words: str) -> str | None:
        """The next token, lower-cased, if it is one of `words` (keywords ignore case)."""
        tok = self.peek()
        if tok.kind == "name" and tok.text.lower() in words:
            self.i += 1
            return tok.text.lower()
        return None

    def expression(self, level: int = 0) -> Node:
        if level == len(_PRECEDENCE):
            return self.unary()
        left = self.expression(level + 1)
        chain = 0
        while (op := self.word(*_PRECEDENCE[level])) is not None:
            pos = self.tokens[self.i - 1].pos
            chain += 1
            if chain > _MAX_CHAIN and op not in ("and", "or"):
                _fail(self.option, pos, f"more than {_MAX_CHAIN} operators in a row; use ( )")
            left = Binary(op, left, self.expression(level + 1), pos)
        return left

    def nested(self, tok: _Token) -> None:
        """Count one more level of (, not, - or function call, refusing hostile depths."""
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            self.fail(tok, f"expressions nest deeper than {_MAX_DEPTH} levels")

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "-" or (tok.kind == "name" and tok.text.lower() == "not"):
            self.i += 1
            self.nested(tok)
            node = Unary("neg" if tok.kind == "-" else "not", self.unary(), tok.pos)
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in _LITERAL_TOKENS:
            return Literal(tok.value, _TOKEN_KIND.get(tok.kind, tok.kind), tok.pos)
        if tok.kind == "(":
            self.nested(tok)
            inner = self.expression()
            self.depth -= 1
            close = self.take()
            if close.kind != ")":
                self.fail(
                    close, f"expected ')' to close the '(' at {tok.pos}, found {_describe(close)}"
                )
            return inner
        if tok.kind == "name" and tok.text.lower() not in _OPERATORS:
            low = tok.text.lower()
            if low in ("true", "false"):
                return Literal(low == "true", "bool", tok.pos)
            if low == "null":
                return Literal(None, "null", tok.pos)
            if self.peek().kind == "(":
                return self.call(tok)
            return self.path(tok)
        before = f" after '{self.tokens[self.i - 2].text}'" if self.i >= 2 else ""
        self.fail(tok, f"expected a value{before}, found {_describe(tok)}")

    def call(self, name_tok: _Token) -> Call:
        name = name_tok.text.lower()
        if name not in _FUNCTIONS:
            self.fail(name_tok, f"unknown function '{name_tok.text}'")
        self.nested(self.take())  # "("
        args: list[Node] = []
        if self.peek().kind == ")":
            self.take()
        else:
            while True:
                args.append(self.expression())
                sep = self.take()
                if sep.kind == ")":
                    break
                if sep.kind != ",":
                    self.fail(
                        sep,
                        f"expected ',' or ')' in the arguments of {name}, found {_describe(sep)}",
                    )
        self.depth -= 1
        fewest, most = _FUNCTIONS[name]
        if not fewest <= len(args) <= most:
            wanted = str(fewest) if fewest == most else f"{fewest} or {most}"
            self.fail(
                name_tok,
                f"{name} takes {wanted} argument{'s' if most != 1 else ''}, got {len(args)}",
            )
        return Call(name, tuple(args), name_tok.pos)

    def path(self, first: _Token) -> Property:
        segments = [first.text]
        while self.peek().kind == "/":
            slash = self.take()
            tok = self.take()
            # a path has no spaces, so "Thing/ eq 1" is a missing name, not a property "eq"
            if tok.kind != "name" or tok.pos != slash.pos + 1:
                self.fail(tok, f"expected a property name after '/', found {_describe(tok)}")
            if self.peek().kind == "(":
                self.fail(
                    tok,
                    f"'{tok.text}(...)' is not supported after '/' "
                    "(lambda operators any/all are not implemented)",
                )
            segments.append(tok.text)
        return Property(tuple("id" if s == "@iot.id" else s for s in segments), first.pos)

    def end(self, expected: str) -> None:
        tok = self.peek()
        if tok.kind != "end":
            self.fail(tok, f"expected {expected}, found {_describe(tok)}")


def _parse_filter(text: str, option: str) -> Node:
    parser = _Parser(text, option)
    if parser.peek().kind == "end":
        parser.fail(parser.peek(), "expected a condition, found nothing")
    node = parser.expression()
    parser.end("an operator or the end")
    return node


def parse_filter(text: str) -> Node:
    """The AST of a $filter expression.

    Raises:
        InvalidInput: the text is not a valid expression; the message gives the position.
    """
    return _parse_filter(text, "$filter")


def _parse_orderby(text: str, option: str) -> list[tuple[Node, str]]:
    parser = _Parser(text, option)
    out: list[tuple[Node, str]] = []
    while True:
        node = parser.expression()
        out.append((node, parser.word("asc", "desc") or "asc"))
        if parser.peek().kind != ",":
            parser.end("asc, desc, ',' or the end")
            return out
        parser.take()


def parse_orderby(text: str) -> list[tuple[Node, str]]:
    """The (expression, 'asc'|'desc') pairs of an $orderby value (direction ignores case).

    Raises:
        InvalidInput: the text is not a list of expressions.
    """
    return _parse_orderby(text, "$orderby")


# ---------------------------------------------------------------------------------------------
# Query options

_OPTION_NAMES = (
    "$filter",
    "$expand",
    "$select",
    "$orderby",
    "$top",
    "$skip",
    "$count",
    "$resultformat",
)
_SELECTABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|@iot\.[A-Za-z]+")
_NAVIGATION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _split_top(text: str, sep: str, option: str, base: int = 0) -> list[tuple[int, str]]:
    """`text` split at `sep` outside parentheses and quoted strings, with each part's offset;
    `base` is where `text` starts within the option's value, for error positions."""
    parts: list[tuple[int, str]] = []
    opened: list[int] = []
    start, i = 0, 0
    while i < len(text):
        c = text[i]
        if c == "'":
            _, i = _read_string(text, i, option, base)
            continue
        if c == "(":
            opened.append(i)
        elif c == ")":
            if not opened:
                _fail(option, base + i + 1, "unexpected ')' without a matching '('")
            opened.pop()
        elif c == sep and not opened:
            parts.append((start, text[start:i]))
            start = i + 1
        i += 1
    if opened:
        _fail(option, base + opened[-1] + 1, "this '(' is not closed")
    parts.append((start, text[start:]))
    return parts


def _parse_select(text: str, option: str) -> list[str]:
    names: list[str] = []
    for start, part in _split_top(text, ",", option):
        name = part.strip()
        if not _SELECTABLE.fullmatch(name):
            at = start + len(part) - len(part.lstrip()) + 1
            _fail(
                option,
                at,
                f"expected a property name, found {name!r}" if name else "expected a property name",
            )
        name = "id" if name == "@iot.id" else name
        if name not in names:
            names.append(name)
    return names


def _parse_expand(text: str, max_top: int, option: str, where: str) -> list[Expand]:
    if where.count("$expand=") >= _MAX_DEPTH:
        raise InvalidInput(f"$expand: options nest deeper than {_MAX_DEPTH} levels")
    out: list[Expand] = []
    for start, part in _split_top(text, ",", option):
        lead = len(part) - len(part.lstrip())
        item, at = part.strip(), start + lead
        paren = item.find("(")
        path_text = item if paren == -1 else item[:paren]
        path: list[str] = []
        offset = at
        for segment in path_text.split("/"):
            if not _NAVIGATION.fullmatch(segment.strip()):
                found = f", found {segment.strip()!r}" if segment.strip() else ""
                _fail(option, offset + 1, f"expected a navigation property{found}")
            path.append(segment.strip())
            offset += len(segment) + 1
        nested: dict[str, str] = {}
        if paren != -1:
            if not item.endswith(")"):
                _fail(option, at + len(item), f"expected ',' or the end after ')' of {path_text}")
            inner_at = at + paren + 1
            inner = item[paren + 1 : -1]
            for opt_start, opt in _split_top(inner, ";", option, inner_at) if inner.strip() else []:
                key, eq, value = opt.partition("=")
                key = key.strip()
                if not eq or not key.startswith("$"):
                    _fail(
                        option,
                        inner_at + opt_start + 1,
                        f"expected an option like $top=3 inside {path_text}(...), found {opt!r}",
                    )
                if key.lower() in (k.lower() for k in nested):
                    _fail(option, inner_at + opt_start + 1, f"{key} is given twice")
                nested[key] = value
        label = "/".join(path)
        out.append(Expand(path, _options(nested, max_top, f" in $expand={label}{where}")))
    return out


def _count(value: str, label: str) -> int:
    text = value.strip()
    bad = next((i for i, c in enumerate(text) if c not in "0123456789"), None)
    if not text or bad is not None:
        _fail(label, (bad or 0) + 1, f"expected a non-negative integer, found {value[:30]!r}")
    # bigint is what OFFSET/LIMIT take; the length test comes first as int() refuses huge texts
    if len(text.lstrip("0")) > 19 or int(text) >= 2**63:
        _fail(label, 1, f"expected an integer below 2^63, found {text[:30]}...")
    return int(text)


def _options(params: Mapping[str, str], max_top: int, where: str) -> QueryOptions:
    given = [key for key in params if key.startswith("$")]
    unknown = [key for key in given if key.lower() not in _OPTION_NAMES]
    if unknown:
        raise InvalidInput(
            f"unknown query option{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}"
            f"{where}; the options are $filter, $expand, $select, $orderby, $top, $skip, "
            "$count and $resultFormat"
        )
    lowered = [key.lower() for key in given]
    twice = sorted({key for key in given if lowered.count(key.lower()) > 1})
    if twice:
        raise InvalidInput(f"query option given more than once{where}: {', '.join(twice)}")
    options = QueryOptions(raw={key: params[key] for key in given})
    for key in given:
        value, name, label = params[key], key.lower(), f"{key}{where}"
        if name == "$filter":
            options.filter = _parse_filter(value, label)
        elif name == "$orderby":
            options.orderby = _parse_orderby(value, label)
        elif name == "$select":
            options.select = _parse_select(value, label)
        elif name == "$expand":
            options.expand = _parse_expand(value, max_top, label, where)
        elif name == "$top":
            options.top = _count(value, label)
            if options.top > max_top:
                _fail(label, 1, f"expected at most {max_top} (the maximum), found {options.top}")
        elif name == "$skip":
            options.skip = _count(value, label)
        elif name == "$count":
            if value.strip().lower() not in ("true", "false"):
                _fail(label, 1, f"expected true or false, found {value!r}")
            options.count = value.strip().lower() == "true"
        elif name == "$resultformat":
            if value.strip().lower() != "dataarray":
                _fail(label, 1, f"expected dataArray (the only result format), found {value!r}")
            options.result_format = "dataArray"
    return options


def parse_options(params: Mapping[str, str], *, max_top: int = 10000) -> QueryOptions:
    """The system query options among `params`; names without `$` belong to the route.

    Raises:
        InvalidInput: an unknown `$` option, or an option whose value is not valid.
    """
    return _options(params, max_top, "")


# ---------------------------------------------------------------------------------------------
# Compiling

_ROOT = "'{}'"  # the jsonb path of the whole value, for #>>
_ISO_SQL = (
    "'^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "([Tt ]([01][0-9]|2[0-3])[:][0-5][0-9]([:][0-5][0-9]([.][0-9]+)?)?"
    "([Zz]|[+-]((0[0-9]|1[0-4])[:]?[0-5][0-9]|(0[0-9]|1[0-4])))?)?$'"
)
_ARTICLE = {
    "number": "a number",
    "text": "a string",
    "time": "a date-time",
    "date": "a date",
    "timeofday": "a time of day",
    "duration": "a duration",
    "geometry": "a geometry",
    "bool": "a condition (true or false)",
    "json": "a JSON value",
    "result": "a result",
    "null": "null",
}
_COMPARISONS = {"eq": "=", "ne": "IS DISTINCT FROM", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_POLYMORPHIC = frozenset({"json", "result"})
# a literal of the first kind may stand for a value of the second (parsed at compile time)
_LITERAL_CONVERSIONS = frozenset(
    {("text", "time"), ("text", "date"), ("text", "timeofday"), ("date", "time")}
)


@dataclass
class _Value:
    """A compiled operand: SQL of a known kind, or a literal whose binding waits for a kind."""

    kind: str
    sql: str = ""
    json_sql: str | None = None
    literal: Literal | None = None
    nullable: bool = True
    pos: int = 0


def _json_as(x: str, kind: str) -> str | None:
    """SQL reading jsonb `x` as `kind`, NULL where the JSON value has another type (never an error,
    so one odd row cannot fail a whole query)."""
    if kind == "json":
        return x
    if kind == "text":
        return f"({x} #>> {_ROOT})"
    if kind == "number":
        return f"(CASE WHEN jsonb_typeof({x}) = 'number' THEN CAST({x} #>> {_ROOT} AS float8) END)"
    if kind == "bool":
        return (
            f"(CASE WHEN jsonb_typeof({x}) = 'boolean' THEN CAST({x} #>> {_ROOT} AS boolean) END)"
        )
    if kind in ("time", "date"):
        s = f"({x} #>> {_ROOT})"
        # the regex admits no invalid month or hour; the inner CASE rejects days past the
        # month's end; only then is the cast safe (PostgreSQL 15 has no pg_input_is_valid)
        month_end = (
            f"EXTRACT(DAY FROM CAST(substr({s}, 1, 7) || '-01' AS date) "
            "+ interval '1 month' - interval '1 day')"
        )
        cast = (
            f"(CASE WHEN jsonb_typeof({x}) = 'string' AND {s} ~ {_ISO_SQL} THEN "
            f"CASE WHEN CAST(substr({s}, 9, 2) AS integer) <= {month_end} "
            f"THEN CAST({s} AS timestamptz) END END)"
        )
        return cast if kind == "time" else f"CAST(({cast} AT TIME ZONE 'UTC') AS date)"
    if kind == "geometry":
        return (
            f"(CASE WHEN jsonb_typeof({x}) = 'object' "
            f"THEN ST_SetSRID(ST_GeomFromGeoJSON(CAST({x} AS text)), 4326) END)"
        )
    return None


def _grouped(sql: str) -> str:
    """A resolver's SQL in parentheses unless it is a plain column, so that operators around it
    (AT TIME ZONE binds tighter than +) cannot regroup it."""
    return sql if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", sql) else f"({sql})"


def _constant(node: Node) -> bool:
    """Whether `node` refers to no property (so `=` rather than IS NOT DISTINCT FROM is exact)."""
    if isinstance(node, Literal):
        return True
    if isinstance(node, Property):
        return False
    if isinstance(node, Call):
        return all(_constant(a) for a in node.args)
    if isinstance(node, Unary):
        return _constant(node.operand)
    return _constant(node.left) and _constant(node.right)


class _Compiler:
    """Typed translation of one AST to SQL, adding bind values to `params`."""

    def __init__(self, resolve: Resolver, params: dict[str, Any], prefix: str, option: str):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
            raise ValueError(f"bind prefix {prefix!r} is not a plain identifier")
        self.resolve, self.params, self.prefix, self.option = resolve, params, prefix, option
        self.counter = 0

    def fail(self, pos: int, message: str) -> NoReturn:
        _fail(self.option, pos, message)

    def bind(self, value: Any) -> str:
        while f"{self.prefix}{self.counter}" in self.params:
            self.counter += 1
        name = f"{self.prefix}{self.counter}"
        self.params[name] = value
        return f":{name}"

    # -- operands ------------------------------------------------------------------------------

    def value(self, node: Node) -> _Value:
        if isinstance(node, Literal):
            return _Value(node.kind, literal=node, pos=node.pos)
        if isinstance(node, Property):
            try:
                f = self.resolve(node.path)
            except InvalidInput as exc:
                self.fail(node.pos, str(exc))
            return _Value(
                f.kind,
                _grouped(f.sql),
                None if f.json_sql is None else _grouped(f.json_sql),
                nullable=f.nullable,
                pos=node.pos,
            )
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, Unary):
            if node.op == "not":
                operand = self.value(node.operand)
                if operand.kind not in ("bool", *_POLYMORPHIC):
                    self.fail(
                        node.pos,
                        f"'not' needs a condition, found {_ARTICLE[operand.kind]}; "
                        "write not (a lt b)",
                    )
                return _Value("bool", f"(NOT {self.coerce(operand, 'bool')})", pos=node.pos)
            operand = self.value(node.operand)
            if operand.literal is not None and operand.kind == "number":
                return self.value(Literal(-operand.literal.value, "number", node.pos))
            kind = "duration" if operand.kind == "duration" else "number"
            return _Value(kind, f"(- {self.coerce(operand, kind)})", pos=node.pos)
        if node.op in ("and", "or"):
            # a left-deep chain (id eq 1 or id eq 2 or ...) is walked, not recursed
            terms: list[Node] = []
            walk: Node = node
            while isinstance(walk, Binary) and walk.op == node.op:
                terms.append(walk.right)
                walk = walk.left
            terms.append(walk)
            sql = f" {node.op.upper()} ".join(self.want(t, "bool") for t in reversed(terms))
            return _Value("bool", f"({sql})", pos=node.pos)
        if node.op in _COMPARISONS:
            return _Value("bool", self.compare(node), pos=node.pos)
        return self.arithmetic(node)

    def want(self, node: Node, kind: str) -> str:
        return self.coerce(self.value(node), kind)

    def coerce(self, v: _Value, kind: str) -> str:
        """SQL of `v` as a value of `kind`, or InvalidInput naming both kinds."""
        if v.literal is not None:
            return self.literal(v.literal, kind)
        if v.kind == kind:
            return v.sql
        if v.kind == "json" and (sql := _json_as(v.sql, kind)):
            return sql
        if v.kind == "result":
            if kind == "number":
                return v.sql
            if v.json_sql is not None:
                if kind == "json":
                    return f"COALESCE(to_jsonb({v.sql}), {v.json_sql})"
                if sql := _json_as(v.json_sql, kind):
                    return sql
        self.fail(v.pos, f"expected {_ARTICLE[kind]}, found {_ARTICLE[v.kind]}")

    def literal(self, lit: Literal, kind: str, wide: bool = False) -> str:
        """A bind for `lit` read as `kind`; `wide` binds integers as numeric, so that arithmetic
        cannot overflow bigint (comparisons keep bigint, which an index on the column can use)."""
        value, have = lit.value, lit.kind
        if have == "null":
            return "NULL"
        if have == "text" and kind in ("time", "date"):
            parsed = parse_datetime(value.strip())
            if parsed is None:
                self.fail(lit.pos, f"expected an ISO 8601 date-time, found '{value}'")
            value, have = (parsed if kind == "time" else parsed.date()), kind
        elif have == "text" and kind == "timeofday":
            try:
                value, have = time.fromisoformat(value.strip()), kind
            except ValueError:
                self.fail(lit.pos, f"expected a time of day like 12:30:00, found '{value}'")
        elif have == "date" and kind == "time":
            value, have = datetime.combine(value, time(0), tzinfo=UTC), kind
        if have != kind:
            self.fail(lit.pos, f"expected {_ARTICLE[kind]}, found {_ARTICLE[have]}")
        if kind == "geometry":
            return f"ST_GeomFromText({self.bind(value)}, 4326)"
        if kind == "duration":
            negative = value.startswith("-")
            sql = f"CAST({self.bind(value.lstrip('-'))} AS interval)"
            return f"(- {sql})" if negative else sql
        if kind == "number":
            if isinstance(value, float):
                sql_type = "float8"
            else:
                sql_type = "bigint" if -(2**63) <= value < 2**63 and not wide else "numeric"
        else:
            sql_type = {
                "text": "text",
                "time": "timestamptz",
                "date": "date",
                "timeofday": "time",
                "bool": "boolean",
            }[kind]
        return f"CAST({self.bind(value)} AS {sql_type})"

    # -- operators -----------------------------------------------------------------------------

    def is_null(self, v: _Value) -> str:
        if v.literal is not None:
            return "TRUE" if v.kind == "null" else "FALSE"
        if v.kind == "json":
            return f"(COALESCE(jsonb_typeof({v.sql}), 'null') = 'null')"
        if v.kind == "result" and v.json_sql is not None:
            return f"({v.sql} IS NULL AND COALESCE(jsonb_typeof({v.json_sql}), 'null') = 'null')"
        return f"({v.sql} IS NULL)"

    def common_kind(self, a: _Value, b: _Value, node: Binary) -> str:
        if a.kind in _POLYMORPHIC and b.kind in _POLYMORPHIC:
            return "json"
        for poly, other in ((a, b), (b, a)):
            if poly.kind in _POLYMORPHIC:
                return "time" if other.kind == "date" and other.literal else other.kind
        if a.kind == b.kind:
            return a.kind
        for lit, other in ((a, b), (b, a)):
            if lit.literal is not None and (lit.kind, other.kind) in _LITERAL_CONVERSIONS:
                return other.kind
        self.fail(
            node.pos, f"'{node.op}' cannot compare {_ARTICLE[a.kind]} with {_ARTICLE[b.kind]}"
        )

    def compare(self, node: Binary) -> str:
        a, b = self.value(node.left), self.value(node.right)
        if a.kind == "null" or b.kind == "null":
            if node.op not in ("eq", "ne"):
                self.fail(node.pos, f"'{node.op}' cannot compare with null; use eq null or ne null")
            test = self.is_null(b if a.kind == "null" else a)
            return test if node.op == "eq" else f"(NOT {test})"
        kind = self.common_kind(a, b, node)
        if kind == "geometry":
            self.fail(node.pos, f"'{node.op}' cannot compare geometries; use st_equals(a, b)")
        op = _COMPARISONS[node.op]
        # OData: null eq null is true; `=` is kept when one side is a constant, for index use
        if op == "=" and not (_constant(node.left) or _constant(node.right)):
            op = "IS NOT DISTINCT FROM"
        return f"({self.coerce(a, kind)} {op} {self.coerce(b, kind)})"

    def arithmetic(self, node: Binary) -> _Value:
        a, b, op = self.value(node.left), self.value(node.right), node.op

        def temporal(v: _Value) -> str | None:
            if v.kind == "time" or (v.kind == "date" and v.literal is not None):
                return "time"
            return "duration" if v.kind == "duration" else None

        ta, tb = temporal(a), temporal(b)
        sign = {"add": "+", "sub": "-"}.get(op)
        result = {
            ("time", "duration", "+"): "time",
            ("time", "duration", "-"): "time",
            ("duration", "time", "+"): "time",
            ("time", "time", "-"): "duration",
            ("duration", "duration", "+"): "duration",
            ("duration", "duration", "-"): "duration",
        }.get((ta or "", tb or "", sign or ""))
        if result is not None and ta is not None and tb is not None:
            sql = f"({self.coerce(a, ta)} {sign} {self.coerce(b, tb)})"
            return _Value(result, sql, pos=node.pos)
        if ta or tb:
            self.fail(node.pos, f"'{op}' cannot combine {_ARTICLE[a.kind]} and {_ARTICLE[b.kind]}")

        def operand(v: _Value) -> str:
            # integer division stays integer (OData); the other operators widen int literals
            if v.literal is not None and op != "div":
                return self.literal(v.literal, "number", wide=True)
            return self.coerce(v, "number")

        x, y = operand(a), operand(b)
        # division by zero gives NULL (no match) rather than failing the whole query
        sql = {
            "add": f"({x} + {y})",
            "sub": f"({x} - {y})",
            "mul": f"({x} * {y})",
            "div": f"({x} / NULLIF({y}, 0))",
            "divby": f"(CAST({x} AS float8) / NULLIF({y}, 0))",
            "mod": f"mod(CAST({x} AS numeric), NULLIF(CAST({y} AS numeric), 0))",
        }[op]
        return _Value("number", sql, pos=node.pos)

    # -- functions -----------------------------------------------------------------------------

    def call(self, node: Call) -> _Value:
        name, args, pos = node.name, node.args, node.pos

        def out(kind: str, sql: str) -> _Value:
            return _Value(kind, sql, pos=pos)

        if name in ("substringof", "contains", "startswith", "endswith", "indexof", "concat"):
            a, b = self.want(args[0], "text"), self.want(args[1], "text")
            return {
                "substringof": out("bool", f"(strpos({b}, {a}) > 0)"),
                "contains": out("bool", f"(strpos({a}, {b}) > 0)"),
                "startswith": out("bool", f"starts_with({a}, {b})"),
                "endswith": out("bool", f"(right({a}, char_length({b})) = {b})"),
                "indexof": out("number", f"(strpos({a}, {b}) - 1)"),
                "concat": out("text", f"({a} || {b})"),
            }[name]
        if name in ("length", "tolower", "toupper", "trim"):
            sql_name = {
                "length": "char_length",
                "tolower": "lower",
                "toupper": "upper",
                "trim": "btrim",
            }[name]
            return out(
                "number" if name == "length" else "text",
                f"{sql_name}({self.want(args[0], 'text')})",
            )
        if name == "substring":
            s = self.want(args[0], "text")
            start = f"CAST({self.want(args[1], 'number')} AS integer) + 1"
            if len(args) == 2:
                return out("text", f"substr({s}, {start})")
            length = f"GREATEST(CAST({self.want(args[2], 'number')} AS integer), 0)"
            return out("text", f"substr({s}, {start}, {length})")
        if name in _DATE_PARTS or name in ("date", "time", "totaloffsetminutes"):
            return self.date_function(node)
        if name in ("now", "mindatetime", "maxdatetime"):
            return out(
                "time",
                {
                    "now": "now()",
                    "mindatetime": "CAST('-infinity' AS timestamptz)",
                    "maxdatetime": "CAST('infinity' AS timestamptz)",
                }[name],
            )
        if name in ("round", "floor", "ceiling"):
            sql_name = "ceil" if name == "ceiling" else name
            return out("number", f"{sql_name}({self.want(args[0], 'number')})")
        geoms = [self.want(arg, "geometry") for arg in args[:2]]
        if name == "geo.distance":
            return out("number", f"ST_Distance({geoms[0]}, {geoms[1]})")
        if name == "geo.length":
            return out("number", f"ST_Length({geoms[0]})")
        if name == "st_relate":
            pattern = args[2]
            if not (
                isinstance(pattern, Literal)
                and pattern.kind == "text"
                and re.fullmatch(r"[012TF*]{9}", str(pattern.value).upper())
            ):
                self.fail(pattern.pos, "st_relate expects a DE-9IM pattern like 'T*F**F***'")
            matrix = self.literal(Literal(str(pattern.value).upper(), "text", pattern.pos), "text")
            return out("bool", f"ST_Relate({geoms[0]}, {geoms[1]}, {matrix})")
        return out("bool", f"{_GEO_PREDICATES[name]}({geoms[0]}, {geoms[1]})")

    def date_function(self, node: Call) -> _Value:
        """Date and time parts, read in UTC whatever the session's time zone."""
        name, v = node.name, self.value(node.args[0])
        if v.literal is None and v.kind == "date" and name in ("year", "month", "day", "date"):
            source = v.sql
        elif (
            v.literal is None
            and v.kind == "timeofday"
            and name in ("hour", "minute", "second", "fractionalseconds", "time")
        ):
            source = v.sql
        else:
            source = f"({self.coerce(v, 'time')} AT TIME ZONE 'UTC')"
        if name == "date":
            return _Value("date", f"CAST({source} AS date)", pos=node.pos)
        if name == "time":
            return _Value("timeofday", f"CAST({source} AS time)", pos=node.pos)
        if name == "totaloffsetminutes":
            # timestamptz keeps no offset: every value is read in UTC
            return _Value("number", f"(CASE WHEN {source} IS NOT NULL THEN 0 END)", pos=node.pos)
        part = f"EXTRACT({_DATE_PARTS[name]} FROM {source})"
        if name == "second":
            part = f"floor({part})"
        elif name == "fractionalseconds":
            return _Value("number", f"CAST({part} - floor({part}) AS float8)", pos=node.pos)
        return _Value("number", f"CAST({part} AS integer)", pos=node.pos)

    def order_keys(self, node: Node, direction: str) -> list[str]:
        v = self.value(node)
        if v.kind in ("geometry", "null"):
            self.fail(v.pos, f"cannot order by {_ARTICLE[v.kind]}")
        word = direction.upper()
        nulls = " NULLS FIRST" if word == "ASC" else " NULLS LAST"  # OData: null is the least
        if v.kind == "result":
            keys = [f"{v.sql} {word}{nulls}"]
            if v.json_sql is not None:
                keys.append(f"{v.json_sql} {word}{nulls}")
            return keys
        sql = self.coerce(v, v.kind)
        return [f"{sql} {word}{nulls if v.nullable else ''}"]


def compile_filter(node: Node, resolve: Resolver, params: dict[str, Any], prefix: str = "f") -> str:
    """A SQL boolean expression for `node`; its bind values go into `params` as prefix+number.

    Raises:
        InvalidInput: an unknown property (from `resolve`) or operands of the wrong kind.
    """
    return _Compiler(resolve, params, prefix, "$filter").want(node, "bool")


def compile_orderby(
    orderby: list[tuple[Node, str]], resolve: Resolver, params: dict[str, Any], prefix: str = "o"
) -> str:
    """The ORDER BY list (without the keywords) for `orderby`; "" when it is empty.

    Nulls sort first ascending and last descending, as OData orders null below every value.

    Raises:
        InvalidInput: an unknown property, a direction other than asc/desc, or a geometry key.
    """
    compiler = _Compiler(resolve, params, prefix, "$orderby")
    keys: list[str] = []
    for node, direction in orderby:
        if direction.lower() not in ("asc", "desc"):
            raise InvalidInput(f"$orderby: expected asc or desc, found {direction!r}")
        keys += compiler.order_keys(node, direction)
    return ", ".join(keys)


def json_path(column: str, keys: Sequence[str]) -> str:
    """SQL for the jsonb value at `keys` inside `column` (e.g. properties/owner/name), for
    resolvers: the keys go into a quoted array literal, so they are limited to characters that
    need no escaping there.

    Raises:
        InvalidInput: a key with a quote, backslash, brace, comma, colon or control character.
    """
    for key in keys:
        if not key or not re.fullmatch(r"[\w\-. @$]+", key):
            raise InvalidInput(
                f"property key {key!r} may use letters, digits, _ - . @ $ and spaces"
            )
    inner = ",".join(f'"{key}"' for key in keys)
    return f"({column} #> '{{{inner}}}')"


__all__ = [
    "Binary",
    "Call",
    "Expand",
    "Field",
    "Literal",
    "Node",
    "Property",
    "QueryOptions",
    "Resolver",
    "Unary",
    "compile_filter",
    "compile_orderby",
    "json_path",
    "parse_datetime",
    "parse_filter",
    "parse_options",
    "parse_orderby",
]
