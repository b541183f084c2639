"""Attributes keep their name, type and text (issue 14, points 5 and 6).

Text stays text: a CityGML string attribute "09175128" is stored as that text (a filter for it
finds it), and only int, double and measure attributes and typed properties become numbers.
Every generic attribute type of CityGML 1.0-3.0 is read by its type (string, int, double, date,
uri, measure with its unit, 3.0's code with its code space, sets with their named members), on
objects and on their roof, wall and ground surfaces alike: a surface's attributes are stored by
name, where its semantics are (the geometry's `semantics.surfaces`), not as
{"stringAttribute": [...]}. Checked on the real files of ../shared/data (Berlin 2.0 and 3.0,
PLATEAU, Lyon), on the SIG3D example building in 2.0 and 3.0 with every kind of generic
attribute written into it as each version's schema lays them out, and through the Features API.
CityJSON and GeoJSON footprints keep a string that looks like a number a string too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import Engine, text

from api.app import create_app
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

BERLIN_2 = SHARED / "citygml2/berlin_moabit_1bldg/Berlin_Moabit_1Bldg_v2.gml"
BERLIN_3 = SHARED / "citygml3/berlin_moabit_1bldg/Berlin_Moabit_1Bldg_v3.gml"
PLATEAU = SHARED / "citygml2/tokyo_plateau_lod2_textured/53394517_bldg_6697_2_op_CityGML2.gml"
LYON = SHARED / "citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml"
SIG3D_2 = SHARED / "citygml2/sig3d_building_lod2/Building_LOD2-EPSG25832.gml"
SIG3D_3 = SHARED / "citygml3/sig3d_building_lod2/Building_LOD2-EPSG25832.gml"
BAG = SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"
LYON_FOOTPRINTS = SHARED / "footprints/lyon1_bdtopo_buildings/buildings_lyon1.geojson"
BUILDING = "GML_7b1a5a6f-ddad-4c3d-a507-3eb9ee0a8e68"  # the SIG3D building's gml:id
GEN2, GEN3 = (f"http://www.opengis.net/citygml/generics/{v}" for v in ("2.0", "3.0"))
CORE3 = "http://www.opengis.net/citygml/3.0"

# (type, name, text in the file, unit): what is written into the SIG3D building
ON_BUILDING = [
    ("string", "Gemeindeschluessel", "09175128", None),
    ("string", "Bemerkung", "  zwei Leerzeichen  ", None),
    ("string", "Wahr", "true", None),
    ("int", "Geschosse", "3", None),
    ("int", "Fehlt", "n/a", None),
    ("double", "Dachneigung", "30", None),
    ("date", "Erfasst", "2014-06-02", None),
    ("uri", "Quelle", "https://example.org/gebaeude/1", None),
    ("measure", "Traufhoehe", "6.25", "m"),
]
IN_SET = [("string", "Flurstueck", "0042/7", None), ("int", "Flur", "12", None)]
ON_SURFACES = {  # the surface's gml:name -> its attributes
    "Roof North": [
        ("double", "Flaeche", "42.5", None),
        ("double", "Z_MAX", "117.0", None),
        ("string", "Ausrichtung", "045", None),
    ],
    "Wall South": [("measure", "Flaeche", "12", "m2"), ("string", "Material", "0815", None)],
    "Ground Slab": [("double", "Flaeche", "120.0", None)],
}
# what each is stored as, whichever the version
STORED: dict[str, Any] = {
    "Gemeindeschluessel": "09175128",
    "Bemerkung": "  zwei Leerzeichen  ",
    "Wahr": "true",
    "Geschosse": 3,
    "Fehlt": "n/a",
    "Dachneigung": 30.0,
    "Erfasst": "2014-06-02",
    "Quelle": "https://example.org/gebaeude/1",
    "Traufhoehe": {"value": 6.25, "uom": "m"},
    "Kataster": {"Flurstueck": "0042/7", "Flur": 12},
}
SURFACES_STORED = {
    "Roof North": {"Flaeche": 42.5, "Z_MAX": 117.0, "Ausrichtung": "045"},
    "Wall South": {"Flaeche": {"value": 12.0, "uom": "m2"}, "Material": "0815"},
    "Ground Slab": {"Flaeche": 120.0},
}


def _attribute_2(kind: str, name: str, value: str, uom: str | None) -> etree._Element:
    """`<gen:{kind}Attribute name=...><gen:value>` (CityGML 1.0/2.0)."""
    el = etree.Element(f"{{{GEN2}}}{kind}Attribute", name=name)
    v = etree.SubElement(el, f"{{{GEN2}}}value")
    v.text = value
    if uom:
        v.set("uom", uom)
    return el


def _attribute_3(kind: str, name: str, value: str, uom: str | None) -> etree._Element:
    """`<gen:{Kind}Attribute><gen:name/><gen:value/>` (CityGML 3.0), without its property."""
    el = etree.Element(f"{{{GEN3}}}{kind[0].upper()}{kind[1:]}Attribute")
    etree.SubElement(el, f"{{{GEN3}}}name").text = name
    v = etree.SubElement(el, f"{{{GEN3}}}value")
    v.text = value
    if uom:
        v.set("uom", uom)
    return el


def _holder(el: etree._Element, ns: str = CORE3) -> etree._Element:
    """A 3.0 generic attribute inside its `genericAttribute` property."""
    prop = etree.Element(f"{{{ns}}}genericAttribute")
    prop.append(el)
    return prop


def _after_name(feature: etree._Element, elements: list[etree._Element]) -> None:
    """Insert after the feature's gml:name (where both versions' schemas allow them)."""
    at = next(n for n, c in enumerate(feature) if etree.QName(c).localname == "name") + 1
    for k, el in enumerate(elements):
        feature.insert(at + k, el)


def _with_attributes(source: Path, version: str) -> bytes:
    """The SIG3D example building with generic attributes on it and on three of its surfaces,
    in the encoding of its version (1.0: the 2.0 file's namespaces turned 1.0, as in
    test_citygml, without the measure attributes and sets that 1.0 lacks)."""
    if version == "1.0":
        body = _with_attributes(source, "2.0").decode("utf-8").replace("/2.0", "/1.0")
        root = etree.fromstring(body.encode("utf-8"))
        for el in list(root.iter("{*}measureAttribute", "{*}genericAttributeSet")):
            el.getparent().remove(el)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    tree = etree.parse(str(source))
    building = next(e for e in tree.iter("{*}Building"))
    if version == "2.0":
        members = [_attribute_2(*a) for a in ON_BUILDING]
        kataster = etree.Element(f"{{{GEN2}}}genericAttributeSet", name="Kataster")
        kataster.extend(_attribute_2(*a) for a in IN_SET)
        _after_name(building, [*members, kataster])
    else:
        members = [_holder(_attribute_3(*a)) for a in ON_BUILDING]
        kataster = etree.Element(f"{{{GEN3}}}GenericAttributeSet")
        etree.SubElement(kataster, f"{{{GEN3}}}name").text = "Kataster"
        kataster.extend(_holder(_attribute_3(*a), GEN3) for a in IN_SET)
        code = etree.Element(f"{{{GEN3}}}CodeAttribute")
        etree.SubElement(code, f"{{{GEN3}}}name").text = "Nutzung"
        value = etree.SubElement(code, f"{{{GEN3}}}value", codeSpace="https://example.org/n")
        value.text = "0100"
        _after_name(building, [*members, _holder(kataster), _holder(code)])
    for surface in building.iter("{*}RoofSurface", "{*}WallSurface", "{*}GroundSurface"):
        name = next(c.text for c in surface if etree.QName(c).localname == "name")
        if name in ON_SURFACES:
            if version == "2.0":
                _after_name(surface, [_attribute_2(*a) for a in ON_SURFACES[name]])
            else:
                _after_name(surface, [_holder(_attribute_3(*a)) for a in ON_SURFACES[name]])
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = new_database()
    folder = tmp_path_factory.mktemp("attributes")
    for version, source in (("1.0", SIG3D_2), ("2.0", SIG3D_2), ("3.0", SIG3D_3)):
        path = folder / f"sig3d_{version}.gml"
        path.write_bytes(_with_attributes(source, version))
        ingest_files(engine, [path], f"sig3d{version[0]}")
    for n, path in enumerate((BERLIN_2, BERLIN_3, PLATEAU)):
        ingest_files(engine, [path], f"real{n}")
    ingest_files(engine, [LYON], "lyon", crs="EPSG:3946")
    return engine


def _attributes(engine: Engine, city: str, source_id: str | None = None) -> dict[str, Any]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT attributes FROM city_object WHERE city_code = :c "
                "AND (CAST(:s AS text) IS NULL OR source_id = :s) AND type = 'Building'"
            ),
            {"c": city, "s": source_id},
        ).scalar_one()


def _generic_in_file(path: Path) -> dict[str, tuple[str, str]]:
    """name -> (type, text) of the generic attributes of a file's building, read with lxml."""
    out = {}
    for el in etree.parse(str(path)).iter("{*}*"):
        local = etree.QName(el).localname
        if not local.endswith("Attribute") or "generics" not in (etree.QName(el).namespace or ""):
            continue
        name = el.get("name") or next(c.text for c in el if etree.QName(c).localname == "name")
        value = next(c for c in el if etree.QName(c).localname == "value")
        out[name] = (local[0].lower() + local[1:].removesuffix("Attribute"), value.text)
    return out


@pytest.mark.parametrize("n", [0, 1, 2], ids=["berlin 2.0", "berlin 3.0", "plateau"])
def test_real_generic_attributes_keep_their_type_and_text(db: Engine, n: int) -> None:
    """Berlin's district keys ("00", "001", "01997") and PLATEAU's codes ("29") are string
    attributes: stored as the file's text, while int and double attributes are numbers."""
    path = (BERLIN_2, BERLIN_3, PLATEAU)[n]
    stored = _attributes(db, f"real{n}")
    in_file = _generic_in_file(path)
    assert in_file
    for name, (kind, value) in in_file.items():
        if kind == "string":
            assert stored[name] == value, name
        elif kind == "int":
            assert stored[name] == int(value) and isinstance(stored[name], int), name
        else:
            assert kind == "double"
            assert stored[name] == float(value) and isinstance(stored[name], float), name
    if n < 2:  # the same building in both versions: the same attributes
        assert stored["KREIS"] == "00" and stored["STR"] == "01997" and stored["FOLIE"] == "011"
        assert stored["function"] == "1179"  # a code of the building-function list


def test_lyon_keeps_its_blank_strings_and_its_numbers(db: Engine) -> None:
    stored = _attributes(db, "lyon")
    assert stored["ADRESSE"] == " " and stored["CODE_DGI"] == "381000AB133"
    assert stored["CODE_INSEE"] == 69381 and stored["SURFTOIT"] == 91.0


@pytest.mark.parametrize("version", ["1.0", "2.0", "3.0"])
def test_every_generic_attribute_type_on_objects(db: Engine, version: str) -> None:
    stored = _attributes(db, f"sig3d{version[0]}", BUILDING)
    expected = dict(STORED)
    if version == "1.0":
        del expected["Traufhoehe"], expected["Kataster"]
        assert "Traufhoehe" not in stored and "Kataster" not in stored
    if version == "3.0":
        expected["Nutzung"] = {"value": "0100", "codeSpace": "https://example.org/n"}
    assert {k: stored[k] for k in expected} == expected
    for name, value in expected.items():  # bool and int are not the same JSON type
        assert type(stored[name]) is type(value), name
    # typed properties stay typed: a code stays text, a year and a storey count are ints
    assert stored["function"] == "1000" and stored["roofType"] == "1030"
    assert stored["storeysAboveGround"] == 1
    with db.connect() as conn:
        [warning] = conn.execute(
            text(
                "SELECT w FROM dataset, jsonb_array_elements_text(warnings) w "
                "WHERE city_code = :c AND w LIKE '%generic attribute%'"
            ),
            {"c": f"sig3d{version[0]}"},
        ).scalars()
    assert warning.startswith("1 generic attribute values cannot be stored as their type")
    assert "'Fehlt' (int): 'n/a'" in warning


@pytest.mark.parametrize("version", ["1.0", "2.0", "3.0"])
def test_surface_attributes_keep_their_names(db: Engine, version: str) -> None:
    with db.connect() as conn:
        semantics = conn.execute(
            text(
                "SELECT g.structure -> 'semantics' FROM object_geometry g JOIN city_object o "
                "ON o.city_code = g.city_code AND o.id = g.object_id "
                "WHERE o.city_code = :c AND o.source_id = :s AND g.structure ? 'semantics'"
            ),
            {"c": f"sig3d{version[0]}", "s": BUILDING},
        ).scalar_one()
    surfaces = {s["attributes"]["name"]: s for s in semantics["surfaces"]}
    assert len(surfaces) == 7
    for name, expected in SURFACES_STORED.items():
        if version == "1.0" and name == "Wall South":  # 1.0 has no measure attribute
            expected = {"Material": "0815"}
        attributes = dict(surfaces[name]["attributes"])
        assert attributes.pop("name") == name
        assert attributes == expected, name
    assert surfaces["Roof North"]["type"] == "RoofSurface"
    assert all("stringAttribute" not in json.dumps(s) for s in semantics["surfaces"])


def test_the_features_api_filters_and_shows_them(db: Engine) -> None:
    client = TestClient(create_app(engine=db))
    for city in ("sig3d2", "sig3d3"):
        found = client.get(f"/collections/{city}/items?Gemeindeschluessel=09175128").json()
        assert [f["id"] for f in found["features"]] == [BUILDING]
        properties = found["features"][0]["properties"]
        # the attributes in their own member or at the top level (api/ is changing that)
        assert properties.get("attributes", properties)["Gemeindeschluessel"] == "09175128"
        item = client.get(f"/collections/{city}/items/{BUILDING}").json()
        [semantics] = [g["semantics"] for g in item["properties"]["geometries"] if "semantics" in g]
        roof = next(s for s in semantics["surfaces"] if s["attributes"]["name"] == "Roof North")
        assert roof["attributes"]["Z_MAX"] == 117.0 and roof["attributes"]["Ausrichtung"] == "045"
    berlin = client.get("/collections/real1/items?KREIS=00&STR=01997").json()
    assert len(berlin["features"]) == 1


def test_cityjson_and_geojson_keep_numeric_looking_text(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    """CityJSON attributes are JSON already, and GDAL reads a GeoJSON string property as a
    string: neither reader turns "09563000" into a number, nor a number into text."""
    doc = json.loads(BAG.read_text())
    [(oid, obj)] = [(k, v) for k, v in doc["CityObjects"].items() if v["type"] == "Building"][:1]
    obj["attributes"] = {"Gemeindeschluessel": "09563000", "Geschosse": 3}
    (tmp_path / "bag.city.json").write_text(json.dumps(doc))
    features = json.loads(LYON_FOOTPRINTS.read_text())
    features["features"] = features["features"][:3]
    for n, feature in enumerate(features["features"]):
        feature["properties"]["CODE_COMMUNE"] = f"0{n}381"
    (tmp_path / "lyon.geojson").write_text(json.dumps(features))
    engine = new_database()
    ingest_files(engine, [tmp_path / "bag.city.json"], "bag")
    ingest_files(engine, [tmp_path / "lyon.geojson"], "fp")
    stored = _attributes(engine, "bag", oid)
    assert stored["Gemeindeschluessel"] == "09563000" and stored["Geschosse"] == 3
    with engine.connect() as conn:
        codes = conn.execute(
            text("SELECT attributes -> 'CODE_COMMUNE' FROM city_object WHERE city_code = 'fp'")
        ).scalars()
        assert sorted(codes) == ["00381", "01381", "02381"]
        heights = conn.execute(
            text("SELECT attributes -> 'HAUTEUR' FROM city_object WHERE city_code = 'fp'")
        ).scalars()
        assert all(isinstance(h, int | float) for h in heights)
