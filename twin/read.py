"""Reading the twin as SensorThings: a resource path and its query options ($filter, $expand,
$select, $orderby, $top, $skip, $count, $resultFormat) become SQL, and the rows the standard's
JSON, with self and navigation links and `@iot.nextLink` pages.

Each level of an expansion is one query for all the parents of that level (a window function
keeps each parent's own `$top`), so a page of 100 Things with their Datastreams and each
Datastream's latest Observations costs three queries, not hundreds.
"""

# ruff: noqa: S608  (table and column names come from twin.entities, never from a request;
# every value is a bind parameter)
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy import Connection, CursorResult, text

from cim import jsonvalues
from cim.errors import InvalidInput, NotFound
from twin.entities import (
    SETS,
    VERSION,
    EntitySet,
    Nav,
    Prop,
    ResourcePath,
    format_interval,
    format_time,
)
from twin.odata import (
    Expand,
    Field,
    Property,
    QueryOptions,
    compile_filter,
    compile_orderby,
    json_path,
)

DEFAULT_TOP = 100
DATA_ARRAY_COMPONENTS = ("id", "phenomenonTime", "resultTime", "result")


@dataclass
class Page:
    """What a collection request answers, before it becomes JSON."""

    value: list[dict[str, Any]]
    count: int | None = None
    next_link: str | None = None


def columns(s: EntitySet, a: str) -> str:
    """The select list of an entity set under alias a: its own columns, with what JSON needs."""
    if s.name == "Datastreams":
        return f"{a}.*, x.first_time, x.last_time, x.first_result_time, x.last_result_time"
    return f"{a}.*"


def _from(s: EntitySet, a: str) -> str:
    if s.name == "Datastreams":
        return f"{s.table} {a} LEFT JOIN twin_latest x ON x.datastream_id = {a}.id"
    return f"{s.table} {a}"


# --- filters: property paths to SQL


def resolver(s: EntitySet, a: str, depth: int = 0) -> Any:
    """The resolver of twin.odata for an entity set under alias a: properties, JSON members
    (`properties/owner`), to-one navigation paths (`Datastream/Thing/name`) as subqueries, and
    locations through a collection (`Thing/Locations/location`) as the collection of them."""

    def resolve(path: tuple[str, ...]) -> Field:
        head, rest = path[0], path[1:]
        name = "@iot.id" if head in ("id", "@iot.id") else head
        prop = s.prop(name)
        if prop is not None:
            return _field(prop, a, rest, s)
        nav = s.nav(head)
        if nav is None:
            raise InvalidInput(f"$filter: {s.singular} has no property {head!r}")
        if not rest:
            raise InvalidInput(f"$filter: {head} is an entity; name one of its properties")
        child = f"n{depth}"
        target = SETS[nav.target]
        inner = resolver(target, child, depth + 1)(rest)
        tables, cond = nav.joins(a, child)
        if nav.many:
            if inner.kind != "geometry":
                raise InvalidInput(
                    f"$filter: {head} is a collection; only its locations can be compared "
                    f"(e.g. st_within({'/'.join(path)}, geography'POLYGON(...)')), or filter "
                    f"{nav.target} instead"
                )
            return Field(f"(SELECT ST_Collect({inner.sql}) FROM {tables} WHERE {cond})", "geometry")
        extra = ""
        if target.name == "Datastreams":
            tables = (
                f"{tables} LEFT JOIN twin_latest x{depth} ON x{depth}.datastream_id = {child}.id"
            )
            extra = ""
        sql = inner.sql.replace("x.", f"x{depth}.") if target.name == "Datastreams" else inner.sql
        json_sql = inner.json_sql
        sub = f"(SELECT {{}} FROM {tables} WHERE {cond}{extra})"
        return Field(
            sub.format(sql), inner.kind, sub.format(json_sql) if json_sql is not None else None
        )

    return resolve


def _field(prop: Prop, a: str, rest: tuple[str, ...], s: EntitySet) -> Field:
    if prop.kind == "json":
        if not rest:
            return Field(f"{a}.{prop.column}", "json")
        return Field(json_path(f"{a}.{prop.column}", rest), "json")
    if rest:
        raise InvalidInput(f"$filter: {prop.name} has no member {'/'.join(rest)!r}")
    if prop.kind == "geometry":
        return Field(f"{a}.geom", "geometry")
    if prop.kind == "result":
        return Field(f"{a}.result_number", "result", f"{a}.result")
    if prop.kind == "id":
        return Field(f"{a}.id", "number")
    column = prop.column.format(a=a)
    if s.name == "Datastreams" and prop.kind == "interval":
        column = {"phenomenonTime": "x.first_time", "resultTime": "x.first_result_time"}[prop.name]
    kind = "time" if prop.kind in ("time", "interval") else prop.kind
    if not column.startswith(("(", "x.")):
        column = f"{a}.{column}"
    if s.name == "Observations" and prop.name == "phenomenonTime":
        return Field(column, kind, nullable=False)  # so that ORDER BY follows the index
    return Field(column, kind)


def order_by(orderby: list[tuple[Any, str]], s: EntitySet, a: str, params: dict[str, Any]) -> str:
    """ORDER BY for `$orderby`, ending with the id in the direction of the last key, so that
    pages are stable and `phenomenonTime desc` walks an index backwards."""
    order = compile_orderby(orderby, resolver(s, a), params)
    last = orderby[-1][1] if orderby else "asc"
    tie = f"{a}.id DESC" if last == "desc" else f"{a}.id"
    return f"{order}, {tie}" if order else tie


# --- JSON


def self_link(base: str, s: EntitySet, ident: int) -> str:
    return f"{base}/{VERSION}/{s.name}({ident})"


def entity_json(
    s: EntitySet, row: dict[str, Any], base: str, select: list[str] | None
) -> dict[str, Any]:
    """One entity as the standard writes it: `@iot.id`, `@iot.selfLink`, its properties and
    the links to its navigation properties (those `$select` names, when it names any)."""
    wanted = None if select is None else {("@iot.id" if n == "id" else n) for n in select}
    link = self_link(base, s, row["id"])
    out: dict[str, Any] = {}
    if wanted is None or "@iot.id" in wanted:
        out["@iot.id"] = row["id"]
    if wanted is None or "@iot.selfLink" in wanted:
        out["@iot.selfLink"] = link
    for prop in s.props[1:]:
        if wanted is not None and prop.name not in wanted:
            continue
        value = property_value(s, prop, row)
        if value is None and prop.name in OPTIONAL_ABSENT:
            continue
        out[prop.name] = value
    for nav in s.navs:
        if wanted is not None and nav.name not in wanted:
            continue
        out[f"{nav.name}@iot.navigationLink"] = f"{link}/{nav.name}"
    return out


OPTIONAL_ABSENT = {"properties", "resultQuality", "validTime", "parameters"}


def result_value(number: float | None, other: Any) -> Any:
    """A result as JSON: a whole number written as an integer (as it was most likely sent)."""
    if number is not None:
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    return other


def property_value(s: EntitySet, prop: Prop, row: dict[str, Any]) -> Any:
    """A property's JSON value from its row."""
    if prop.kind == "result":
        return result_value(row["result_number"], row["result"])
    if s.name == "Datastreams" and prop.kind == "interval":
        if prop.name == "phenomenonTime":
            return format_interval(row.get("first_time"), row.get("last_time"))
        return format_interval(row.get("first_result_time"), row.get("last_result_time"))
    if prop.kind == "interval":
        return format_interval(row[prop.column], row[prop.end_column or ""])
    if prop.kind == "time":
        return format_time(row[prop.column])
    if prop.kind == "id":
        return row["id"]
    return row[prop.column]


# --- queries


def path_scope(path: ResourcePath, params: dict[str, Any]) -> tuple[str, str, str]:
    """(FROM, WHERE, alias of the last step) for the entities a resource path names."""
    steps = path.steps
    first = steps[0]
    froms = [_from(first.set, "e0") if len(steps) == 1 else f"{first.set.table} e0"]
    where: list[str] = []
    if first.id is not None:
        where.append("e0.id = :p0")
        params["p0"] = first.id
    for i, step in enumerate(steps[1:], start=1):
        assert step.nav is not None
        tables, cond = step.nav.joins(f"e{i - 1}", f"e{i}")
        if i == len(steps) - 1 and step.set.name == "Datastreams":
            tables = tables.replace(
                f"{step.set.table} e{i}",
                f"{step.set.table} e{i} LEFT JOIN twin_latest x ON x.datastream_id = e{i}.id",
                1,
            )
        froms.append(tables)
        where.append(cond)
        if step.id is not None:
            where.append(f"e{i}.id = :p{i}")
            params[f"p{i}"] = step.id
    return ", ".join(froms), " AND ".join(where) or "TRUE", f"e{len(steps) - 1}"


def check_parents(conn: Connection, path: ResourcePath) -> None:
    """404 when an entity the path names on the way does not exist."""
    for n in range(1, len(path.steps) + 1):
        prefix = ResourcePath(path.steps[:n])
        if prefix.steps[-1].id is None and n < len(path.steps):
            continue
        if n == len(path.steps) and path.is_collection:
            break
        params: dict[str, Any] = {}
        froms, where, _ = path_scope(prefix, params)
        if conn.execute(text(f"SELECT 1 FROM {froms} WHERE {where} LIMIT 1"), params).first():
            continue
        names = "/".join(
            f"{s.nav.name if s.nav else s.set.name}" + (f"({s.id})" if s.id is not None else "")
            for s in prefix.steps
        )
        raise NotFound(f"{names} does not exist")


def read_entity(
    conn: Connection, path: ResourcePath, options: QueryOptions, base: str
) -> dict[str, Any]:
    """One entity (the path ends in an id or a to-one navigation), with its expansions."""
    params: dict[str, Any] = {}
    froms, where, a = path_scope(path, params)
    s = path.last.set
    row = (
        conn.execute(text(f"SELECT {columns(s, a)} FROM {froms} WHERE {where} LIMIT 1"), params)
        .mappings()
        .first()
    )
    if row is None:
        check_parents(conn, path)  # which one on the path is missing
        raise NotFound(f"{path.last.nav.name if path.last.nav else s.name} does not exist")
    entity = entity_json(s, dict(row), base, options.select)
    expand(conn, s, [(dict(row), entity)], options.expand, base, Budget())
    return entity


def _scope(path: ResourcePath, options: QueryOptions) -> tuple[str, str, str, str, dict[str, Any]]:
    """(FROM, WHERE with the filter, alias, ORDER BY, parameters) of a collection's page."""
    params: dict[str, Any] = {}
    froms, where, a = path_scope(path, params)
    s = path.last.set
    if options.filter is not None:
        where += " AND " + compile_filter(options.filter, resolver(s, a), params)
    return froms, where, a, order_by(options.orderby, s, a, params), params


def _next_link(base: str, path: ResourcePath, query: str, top: int, skip: int) -> str:
    return f"{base}/{VERSION}/{path_text(path)}?" + next_query(query, top, skip + top)


def read_collection(
    conn: Connection,
    path: ResourcePath,
    options: QueryOptions,
    base: str,
    query: str,
) -> Page:
    """A page of a collection, its count when asked, and the link to the next page."""
    froms, where, a, order, params = _scope(path, options)
    s = path.last.set
    top = DEFAULT_TOP if options.top is None else options.top
    rows = _dicts(
        conn.execute(
            text(
                f"SELECT {columns(s, a)} FROM {froms} WHERE {where} ORDER BY {order} "
                f"LIMIT :top OFFSET :skip"
            ),
            {**params, "top": top + 1, "skip": options.skip},
        )
    )
    count = None
    if options.count:
        count = conn.execute(text(f"SELECT count(*) FROM {froms} WHERE {where}"), params).scalar()
    if not rows:  # rows found say that every entity on the path exists
        check_parents(conn, path)
    more = len(rows) > top
    rows = rows[:top]
    value = [entity_json(s, r, base, options.select) for r in rows]
    expand(conn, s, list(zip(rows, value, strict=True)), options.expand, base, Budget())
    next_link = _next_link(base, path, query, top, options.skip) if more else None
    return Page(value, count, next_link)


def _dicts(result: CursorResult[Any]) -> list[dict[str, Any]]:
    """A result's rows as dicts, fetched at once (by mapping, row by row, took a third of a
    day of Observations' answer)."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result.all()]


def path_text(path: ResourcePath) -> str:
    parts = []
    for step in path.steps:
        name = step.nav.name if step.nav else step.set.name
        parts.append(name + (f"({step.id})" if step.id is not None else ""))
    return "/".join(parts)


def next_query(query: str, top: int, skip: int) -> str:
    """The request's own query with `$top` and `$skip` for the next page."""
    kept = [
        (k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in ("$top", "$skip")
    ]
    kept += [("$top", str(top)), ("$skip", str(skip))]
    return urlencode(kept, quote_via=quote, safe="$(),'/:")


# --- $expand


@dataclass
class _Merged:
    nav: Nav
    options: QueryOptions
    children: list[Expand] = field(default_factory=list)


def _normalise(s: EntitySet, expands: Iterable[Expand]) -> list[_Merged]:
    """`A/B($top=1)` is `A($expand=B($top=1))`; two expansions of one navigation merge."""
    merged: dict[str, _Merged] = {}
    for e in expands:
        head, rest = e.path[0], e.path[1:]
        nav = s.nav(head)
        if nav is None:
            raise InvalidInput(f"$expand: {s.singular} has no navigation property {head!r}")
        item = merged.get(head)
        if item is None:
            options = (
                e.options
                if not rest
                else QueryOptions(
                    filter=None,
                    expand=[],
                    select=None,
                    orderby=[],
                    top=None,
                    skip=0,
                    count=False,
                    result_format=None,
                )
            )
            item = merged[head] = _Merged(nav, options)
        elif not rest:
            item.options = replace(e.options, expand=item.options.expand + e.options.expand)
        if rest:
            item.children.append(Expand(rest, e.options))
    for item in merged.values():
        item.options = replace(item.options, expand=item.options.expand + item.children)
    return list(merged.values())


MAX_EXPANDED = 100_000  # entities that $expand may add to one response


@dataclass
class Budget:
    """What $expand may still add to a response: nested expansions multiply (10,000 Things
    with 10,000 Observations each is not a page), so they draw on one budget."""

    left: int = field(default_factory=lambda: MAX_EXPANDED)

    def limit(self) -> int:
        """The rows to fetch: one more than is left, to tell that it would be exceeded."""
        return self.left + 1

    def spend(self, n: int) -> None:
        if n > self.left:
            raise InvalidInput(
                f"$expand would put more than {MAX_EXPANDED:,} entities in one response; "
                "lower the $top of the expansions (or of the request), or page through them"
            )
        self.left -= n


def expand(
    conn: Connection,
    s: EntitySet,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    expands: list[Expand],
    base: str,
    budget: Budget,
) -> None:
    """Fill in each entity's expanded navigation properties, one query per navigation."""
    if not pairs or not expands:
        return
    for item in _normalise(s, expands):
        nav, options = item.nav, item.options
        target = SETS[nav.target]
        params: dict[str, Any] = {}
        if not nav.many:
            ids = sorted({r[nav.parent_column or ""] for r, _ in pairs} - {None})
            where = "c.id = ANY(:ids)"
            if options.filter is not None:
                where += " AND " + compile_filter(options.filter, resolver(target, "c"), params)
            found = {
                r["id"]: dict(r)
                for r in conn.execute(
                    text(f"SELECT {columns(target, 'c')} FROM {_from(target, 'c')} WHERE {where}"),
                    {**params, "ids": ids},
                ).mappings()
            }
            children = []
            for row, entity in pairs:
                child = found.get(row[nav.parent_column or ""])
                entity.pop(f"{nav.name}@iot.navigationLink", None)
                if child is not None:
                    entity[nav.name] = entity_json(target, child, base, options.select)
                    children.append((child, entity[nav.name]))
            budget.spend(len(children))
            expand(conn, target, children, options.expand, base, budget)
            continue
        if _is_latest(s, nav, options):
            budget.spend(len(pairs))
            _expand_latest(conn, pairs, options, base)
            continue
        top = DEFAULT_TOP if options.top is None else options.top
        tables, cond = nav.joins("p", "c")
        key = cond.split(" = p.id")[0]  # the parent key expression over c (or c_l)
        extra = cond.split(" = p.id", 1)[1].removeprefix(" AND ") if " AND " in cond else ""
        if target.name == "Datastreams":
            tables = tables.replace(
                f"{target.table} c",
                f"{target.table} c LEFT JOIN twin_latest x ON x.datastream_id = c.id",
                1,
            )
        where = f"{key} = p.id" + (f" AND {extra}" if extra else "")
        if options.filter is not None:
            where += " AND " + compile_filter(options.filter, resolver(target, "c"), params)
        order = order_by(options.orderby, target, "c", params)
        ids = sorted({r["id"] for r, _ in pairs})
        # each parent's own page from its own index range (a Datastream's latest Observations
        # are the end of its primary key), not a window over all the parents' children
        sql = (
            f"SELECT s.*, p.id AS _parent FROM unnest(CAST(:ids AS bigint[])) AS p(id) "
            f"CROSS JOIN LATERAL (SELECT {columns(target, 'c')} FROM {tables} WHERE {where} "
            f"ORDER BY {order} LIMIT :top + 1 OFFSET :skip) s LIMIT :budget"
        )
        by_parent: dict[int, list[dict[str, Any]]] = defaultdict(list)
        fetched = 0
        for row in _dicts(
            conn.execute(
                text(sql),
                {**params, "ids": ids, "skip": options.skip, "top": top, "budget": budget.limit()},
            )
        ):
            by_parent[row["_parent"]].append(row)
            fetched += 1
        budget.spend(fetched)
        counts: dict[int, int] = {}
        if options.count:
            counted = (
                f"SELECT p.id, (SELECT count(*) FROM {tables} WHERE {where}) "
                f"FROM unnest(CAST(:ids AS bigint[])) AS p(id)"
            )
            counts = {r[0]: r[1] for r in conn.execute(text(counted), {**params, "ids": ids})}
        children = []
        next_page: str | None = None
        for row, entity in pairs:
            entity.pop(f"{nav.name}@iot.navigationLink", None)
            found_rows = by_parent.get(row["id"], [])
            more = len(found_rows) > top
            found_rows = found_rows[:top]
            values = [entity_json(target, c, base, options.select) for c in found_rows]
            entity[nav.name] = values
            if options.count:
                entity[f"{nav.name}@iot.count"] = counts.get(row["id"], 0)
            if more:
                if next_page is None:  # the same for every parent: made once
                    raw = {
                        k: v for k, v in options.raw.items() if k.lower() not in ("$top", "$skip")
                    }
                    next_page = next_query(urlencode(raw), top, options.skip + top)
                link = f"{self_link(base, s, row['id'])}/{nav.name}"
                entity[f"{nav.name}@iot.nextLink"] = f"{link}?{next_page}"
            children.extend(zip(found_rows, values, strict=True))
        expand(conn, target, children, options.expand, base, budget)


def _is_latest(s: EntitySet, nav: Nav, options: QueryOptions) -> bool:
    """Datastreams' `Observations($top=1;$orderby=phenomenonTime desc)`, how clients ask
    for latest values: nothing more (no filter, skip, count or deeper expansion)."""
    return (
        s.name == "Datastreams"
        and nav.name == "Observations"
        and options.top == 1
        and options.skip == 0
        and options.filter is None
        and not options.count
        and not options.expand
        and options.orderby == [(Property(("phenomenonTime",)), "desc")]
    )


# what twin_latest keeps of a Datastream's latest Observation (and the links made from ids)
_KEPT_LATEST = {
    "id",
    "@iot.id",
    "@iot.selfLink",
    "phenomenonTime",
    "resultTime",
    "result",
    "Datastream",
    "FeatureOfInterest",
}


def _expand_latest(
    conn: Connection,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    options: QueryOptions,
    base: str,
) -> None:
    """The latest Observation of each Datastream from `twin_latest` and one primary-key probe
    each, not an index walk per Datastream through every monthly partition (600 ms for
    10,000 Datastreams); whether there are more (for the next link) from the span kept there,
    probing only when the first Observation has the latest's very time."""
    ids = sorted({r["id"] for r, _ in pairs})
    more = """CASE WHEN x.first_time < x.phenomenon_start THEN true
                    ELSE EXISTS (SELECT 1 FROM twin_observation e
                                 WHERE e.datastream_id = x.datastream_id
                                   AND e.phenomenon_start = x.phenomenon_start
                                   AND e.id <> x.observation_id) END AS _more"""
    if options.select is not None and set(options.select) <= _KEPT_LATEST:
        # all that is asked for is kept in twin_latest itself
        sql = f"""
        SELECT x.observation_id AS id, x.phenomenon_start, x.phenomenon_end, x.result_time,
               x.result_number, x.result, x.datastream_id, x.datastream_id AS _parent, {more}
        FROM twin_latest x WHERE x.datastream_id = ANY(:ids)"""
    else:  # one primary-key probe each (a join may pick a scan of all the history)
        sql = f"""
        SELECT o.*, x.datastream_id AS _parent, {more}
        FROM twin_latest x CROSS JOIN LATERAL (
            SELECT * FROM twin_observation o WHERE o.datastream_id = x.datastream_id
               AND o.phenomenon_start = x.phenomenon_start AND o.id = x.observation_id
            LIMIT 1) o
        WHERE x.datastream_id = ANY(:ids)"""
    latest = {r["_parent"]: r for r in _dicts(conn.execute(text(sql), {"ids": ids}))}
    target = SETS["Observations"]
    next_page = next_query(
        urlencode({k: v for k, v in options.raw.items() if k.lower() not in ("$top", "$skip")}),
        1,
        1,
    )
    for row, entity in pairs:
        entity.pop("Observations@iot.navigationLink", None)
        found = latest.get(row["id"])
        entity["Observations"] = (
            [] if found is None else [entity_json(target, found, base, options.select)]
        )
        if found is not None and found["_more"]:
            link = f"{self_link(base, SETS['Datastreams'], row['id'])}/Observations"
            entity["Observations@iot.nextLink"] = f"{link}?{next_page}"


# --- $resultFormat=dataArray


TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'  # as format_time writes a time


def _time_json(column: str) -> str:
    return f"('\"' || to_char({column} AT TIME ZONE 'UTC', :time_format) || '\"')"


def _component_json(prop: Prop | None, a: str) -> str:
    """SQL for one Data Array component as JSON text, written as `property_value` writes it
    (times in UTC to the millisecond, a whole number as an integer, a number exactly)."""
    if prop is None or prop.kind == "id":
        return f"{a}.id::text"
    column = f"{a}.{prop.column}"
    if prop.kind == "result":
        return (
            f"CASE WHEN {column} IS NULL THEN coalesce({a}.result::text, 'null') "
            f"WHEN {column} = trunc({column}) AND abs({column}) < 9007199254740992 "
            f"THEN {column}::bigint::text ELSE {column}::text END"
        )
    if prop.kind == "time":
        return f"coalesce({_time_json(column)}, 'null')"
    if prop.kind == "interval":
        end = f"{a}.{prop.end_column}"
        return (
            f"CASE WHEN {column} IS NULL THEN 'null' "
            f"WHEN {end} IS NULL OR {end} = {column} THEN {_time_json(column)} "
            f"ELSE '\"' || to_char({column} AT TIME ZONE 'UTC', :time_format) || '/' || "
            f"to_char({end} AT TIME ZONE 'UTC', :time_format) || '\"' END"
        )
    return f"coalesce({column}::text, 'null')"  # jsonb


def data_array_components(select: list[str] | None) -> list[str]:
    """The components of a Data Array answer: what `$select` names, else the standard's."""
    components = list(select or DATA_ARRAY_COMPONENTS)
    unknown = [
        c for c in components if c not in ("id", "@iot.id") and SETS["Observations"].prop(c) is None
    ]
    if unknown:
        raise InvalidInput(f"$select: Observations have no {', '.join(unknown)}")
    return components


def read_data_array(
    conn: Connection, path: ResourcePath, options: QueryOptions, base: str, query: str
) -> bytes:
    """A page of Observations as the Data Array extension writes them, grouped by Datastream:
    one list of components, one array of values per Observation. Each row's JSON is written
    by PostgreSQL (a day of one Datastream is a thousand rows; making them Python objects
    first took most of the answer's time)."""
    if path.last.set.name != "Observations":
        raise InvalidInput("$resultFormat=dataArray is for Observations only")
    s = path.last.set
    components = data_array_components(options.select)
    froms, where, a, order, params = _scope(path, options)
    top = DEFAULT_TOP if options.top is None else options.top
    row = " || ',' || ".join(_component_json(s.prop(c), a) for c in components)
    rows = conn.execute(
        text(
            f"SELECT {a}.datastream_id, '[' || {row} || ']' FROM {froms} WHERE {where} "
            f"ORDER BY {order} LIMIT :top OFFSET :skip"
        ),
        {**params, "top": top + 1, "skip": options.skip, "time_format": TIME_FORMAT},
    ).all()
    if not rows:
        check_parents(conn, path)
    groups: dict[int, list[str]] = defaultdict(list)
    for datastream, values in rows[:top]:
        groups[datastream].append(values)
    names = jsonvalues.dumps(components).decode()

    def link(ds: int) -> str:  # the base comes from the request's Host: JSON-quoted
        return jsonvalues.dumps(self_link(base, SETS["Datastreams"], ds)).decode()

    value = ",".join(
        f'{{"Datastream@iot.navigationLink":{link(ds)},'
        f'"components":{names},"dataArray@iot.count":{len(values)},'
        f'"dataArray":[{",".join(values)}]}}'
        for ds, values in groups.items()
    )
    out = "{"
    if options.count:
        count = conn.execute(text(f"SELECT count(*) FROM {froms} WHERE {where}"), params).scalar()
        out += f'"@iot.count":{count},'
    out += f'"value":[{value}]'
    if len(rows) > top:
        following = _next_link(base, path, query, top, options.skip)
        out += f',"@iot.nextLink":{jsonvalues.dumps(following).decode()}'
    return (out + "}").encode()


def object_links(conn: Connection, city: str, object_id: str, base: str) -> list[dict[str, Any]]:
    """Links from a city object (a Features API item) to the Things on or in it and to their
    Datastreams."""
    rows = conn.execute(
        text("""
        SELECT t.id, t.name, d.id AS ds, d.name AS ds_name
        FROM twin_thing t LEFT JOIN twin_datastream d ON d.thing_id = t.id
        WHERE t.city_code = :c AND t.object_id = :o ORDER BY t.id, d.id"""),
        {"c": city, "o": object_id},
    ).all()
    links: list[dict[str, Any]] = []
    seen = set()
    for r in rows:
        if r.id not in seen:
            seen.add(r.id)
            links.append(
                {
                    "href": self_link(base, SETS["Things"], r.id),
                    "rel": "related",
                    "type": "application/json",
                    "title": f"Thing: {r.name}",
                }
            )
        if r.ds is not None:
            links.append(
                {
                    "href": self_link(base, SETS["Datastreams"], r.ds),
                    "rel": "related",
                    "type": "application/json",
                    "title": f"Datastream: {r.ds_name}",
                }
            )
    return links
