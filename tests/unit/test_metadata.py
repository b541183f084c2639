"""Property tables keep each attribute's type, name every property legally, and mark gaps."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tiles.metadata import (
    FLOAT_NODATA,
    INT32_NODATA,
    SchemaMismatch,
    column_table,
    property_table,
)
from tiles.properties import Property, PropertySchema
from tiles.service import TileMemory


def _schema(rows: list[dict]) -> tuple[dict, dict, list[bytes]]:
    meta, views = property_table(rows)
    props = meta["schema"]["classes"]["cityobject"]["properties"]
    return props, meta["propertyTables"][0]["properties"], views


def test_types_follow_the_values() -> None:
    rows = [
        {"id": "a", "floors": 3, "height": 9.5, "smart": True, "big": 2**40, "tags": ["x"]},
        {"id": "b", "floors": 5, "height": 12, "smart": False, "big": 1, "tags": {"k": 1}},
    ]
    props, table, views = _schema(rows)
    assert props["floors"] == {"name": "floors", "type": "SCALAR", "componentType": "INT32"}
    assert props["height"]["componentType"] == "FLOAT64"  # 9.5 and 12 together
    assert props["big"]["componentType"] == "FLOAT64"  # beyond INT32
    assert props["smart"]["type"] == "BOOLEAN"
    assert props["tags"]["type"] == "STRING"  # lists and objects as JSON text
    bits = np.unpackbits(
        np.frombuffer(views[table["smart"]["values"]], np.uint8), bitorder="little"
    )
    assert bits[:2].tolist() == [1, 0]
    floors = np.frombuffer(views[table["floors"]["values"]], "<i4")
    assert floors.tolist() == [3, 5]


def test_missing_values_get_no_data() -> None:
    props, table, views = _schema(
        [{"id": "a", "n": 1, "x": 1.5, "s": "yes", "b": True}, {"id": "b"}]
    )
    assert props["n"]["required"] is False and props["n"]["noData"] == INT32_NODATA
    assert props["x"]["noData"] == FLOAT_NODATA
    assert props["s"]["noData"] == "\x00"  # never a real text: an empty column is not empty
    assert props["b"]["type"] == "STRING"  # booleans cannot have noData: kept as text
    assert np.frombuffer(views[table["n"]["values"]], "<i4").tolist() == [1, INT32_NODATA]


def test_property_names_are_identifiers_and_keep_the_original() -> None:
    props, _, _ = _schema(
        [
            {
                "id": "a",
                "名称": "x",
                "+reduction": 2,
                "roof-type": "flat",
                "roof_type": "gabled",
                "3d": 1,
            }
        ]
    )
    for ident in props:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident), ident
    names = {prop["name"] for prop in props.values()}
    assert {"名称", "+reduction", "roof-type", "roof_type", "3d"} <= names
    assert len(props) == 6


def test_tile_memory_checks_etags_and_keeps_to_its_budget() -> None:
    memory = TileMemory(max_bytes=400)
    memory.put(("c", (1, 0, 0), "glb"), "e1", b"x" * 100)
    assert memory.get(("c", (1, 0, 0), "glb"), "e1") == b"x" * 100
    assert memory.get(("c", (1, 0, 0), "glb"), "e2") is None  # changed in the database
    for n in range(2, 8):
        memory.put(("c", (n, 0, 0), "glb"), "e", b"y" * 90)
    assert memory.used <= 400
    assert memory.get(("c", (1, 0, 0), "glb"), "e1") is None  # least recently used went first


def test_meshopt_round_trip_gives_back_every_stream() -> None:
    """What EXT_meshopt_compression carries decodes to exactly the uncompressed views."""
    from tiles.gltf import Geometry, read_glb, write_glb
    from tiles.meshopt import compress, decompress, reorder

    rng = np.random.default_rng(3)
    n = 300
    geometry = reorder(
        Geometry(
            center=np.array([-2.2e6, 4.4e6, 4.0e6]),
            positions=rng.uniform(-50, 50, (n, 3)).astype(np.float32),
            normals=np.tile(np.array([[0, 0, 1]], np.float32), (n, 1)),
            colors=rng.integers(0, 255, (n, 4), dtype=np.uint8),
            feature_ids=np.repeat(np.arange(n // 3, dtype=np.float32), 3),
            indices=np.arange(n, dtype=np.uint32),
        )
    )
    plain = write_glb(geometry, n // 3, None, [])
    packed = compress(plain)
    assert len(packed) < len(plain)
    doc, _ = read_glb(packed)
    assert "EXT_meshopt_compression" in doc["extensionsRequired"]
    again, binary = read_glb(decompress(packed))
    first, original = read_glb(plain)
    assert again["accessors"] == first["accessors"]
    for a, b in zip(again["bufferViews"], first["bufferViews"], strict=True):
        assert (
            binary[a["byteOffset"] : a["byteOffset"] + a["byteLength"]]
            == original[b["byteOffset"] : b["byteOffset"] + b["byteLength"]]
        )


def _fixed(*props: tuple[str, str, bool]) -> PropertySchema:
    """A schema decided beforehand (as a city's is), to offer it values that do not fit."""
    return PropertySchema(
        tuple(Property(name, name, kind, gaps) for name, kind, gaps in props),
        {name: name for name, _, _ in props},
    )


@pytest.mark.parametrize(
    ("kind", "gaps", "values", "message"),
    [
        ("INT32", False, [1, True], "is a number in the city, not True"),
        ("FLOAT64", False, [1.5, "2"], "is a number in the city, not '2'"),
        ("INT32", False, [1, None], "has a value for every object"),
        ("INT32", True, [1, 2.5], "holds whole numbers"),
        ("INT32", True, [1, 2**31], "holds whole numbers"),
        ("INT32", True, [None, -(2**31)], "holds whole numbers"),  # the noData value itself
        ("BOOLEAN", False, [True, None], "true/false for every object"),
        ("BOOLEAN", False, [True, 1], "true/false for every object"),
    ],
)
def test_values_the_schema_has_no_room_for_are_refused(
    kind: str, gaps: bool, values: list, message: str
) -> None:
    schema = _fixed(("p", kind, gaps))
    with pytest.raises(SchemaMismatch, match=re.escape(message)):
        column_table({"p": values}, len(values), schema)


def test_columns_give_what_rows_give() -> None:
    """The column-wise table (what tiles are made with) equals the one made object by object,
    gaps, empty texts and values of other types included."""
    schema = _fixed(
        ("s", "STRING", True), ("n", "INT32", True), ("f", "FLOAT64", True), ("b", "BOOLEAN", False)
    )
    rows = [
        {"s": "一", "n": 1, "f": 2, "b": True},
        {"s": "", "n": None, "f": None, "b": False},
        {"s": None, "n": -5, "f": 2.5, "b": True},
        {"s": 7, "n": 2**31 - 1, "f": -1e300, "b": False},
    ]
    by_rows = property_table(rows, schema)
    columns = {name: [row[name] for row in rows] for name in ("s", "n", "f", "b")}
    assert column_table(columns, len(rows), schema) == by_rows
    meta, views = by_rows
    table = meta["propertyTables"][0]["properties"]
    offsets = np.frombuffer(views[table["s"]["stringOffsets"]], "<u4")
    text = views[table["s"]["values"]]
    assert [text[a:b] for a, b in zip(offsets, offsets[1:], strict=False)] == [
        "一".encode(),
        b"\x00",
        b"\x00",
        b"7",
    ]
    assert np.frombuffer(views[table["n"]["values"]], "<i4").tolist() == [
        1,
        INT32_NODATA,
        -5,
        2**31 - 1,
    ]
    assert np.frombuffer(views[table["f"]["values"]], "<f8").tolist() == [
        2.0,
        FLOAT_NODATA,
        2.5,
        -1e300,
    ]


def test_an_attribute_the_schema_does_not_know_is_refused() -> None:
    schema = _fixed(("known", "STRING", True))
    own = {"id": ["a", "b"]}
    with pytest.raises(SchemaMismatch, match="'other' is not in the city's schema"):
        schema.columns(own, [{"known": "x"}, {"other": 1}])
    assert schema.columns(own, [{"known": "x"}, {}]) == {"id": ["a", "b"], "known": ["x", None]}
