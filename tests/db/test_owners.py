"""Every table has one owner: the only module whose SQL writes it is the one `cim.db.models.WRITERS`
names, and every table of the schema is named there."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

from cim.db.models import WRITERS, Base

ROOT = Path(__file__).resolve().parents[2]
WRITE = re.compile(
    r"\b(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|COPY|ALTER\s+TABLE)\s+"
    r"([a-z_][a-z0-9_]*)\b"  # SQL keywords are written in capitals here; prose is not
)


def packages() -> list[str]:
    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cim"]["layers"]
    return [package for layer in layers for package in layer]


def writes(tree: ast.AST) -> set[str]:
    """The tables a module's SQL writes: statements in its string literals, and table names
    handed to a function whose name says it copies (COPY statements built with sql.Identifier)."""
    tables = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            tables |= set(WRITE.findall(node.value))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if "copy" in name.lower():
                tables |= {
                    a.value
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str)
                }
    return tables & set(Base.metadata.tables)


def test_every_table_has_an_owner() -> None:
    assert set(WRITERS) == set(Base.metadata.tables)


def test_only_the_owner_writes_a_table() -> None:
    wrong = []
    written: set[str] = set()
    for package in packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for table in writes(ast.parse(path.read_text(), str(path))):
                written.add(table)
                if WRITERS[table] != module:
                    wrong.append(f"{module} writes {table}, owned by {WRITERS[table]}")
    assert not wrong, "\n".join(wrong)
    assert written == set(WRITERS), f"no owner writes: {set(WRITERS) - written}"


def test_the_scan_sees_each_kind_of_write() -> None:
    tree = ast.parse(
        'a = "INSERT INTO city (code) VALUES (1)"\n'
        'b = "UPDATE dataset SET status = 1"\n'
        'c = "DELETE FROM tile_cache t USING x"\n'
        '_copy_sql("city_object", COLUMNS)\n'
        'd = "SELECT * FROM grading_value"\n'
    )
    assert writes(tree) == {"city", "dataset", "tile_cache", "city_object"}
