"""CityGML 3.0 textures: their coordinates stand beside the target, not inside it.

2.0 writes `app:target uri="#polygon"` around an `app:TexCoordList` whose coordinate lists name
their rings in attributes; 3.0 (OGC 20-010 encoding, appearance.xsd) writes an
`app:TextureAssociation` whose `app:target` sits beside an `app:textureParameterization` holding
the `app:TexCoordList`, with the coordinate lists and the `app:ring` references as sibling
elements. No textured CityGML 3.0 file with its images is in ../shared/data, so the textured Lyon
house (2.0, image included) is turned into 3.0 here, element by element as the 3.0 schemas lay
it out, with its appearance inside the building part and, as PLATEAU does, at the document's
top level. Both must land with the same texture coordinates, the same drawn (u, v) and the
image in the GLB. The real 3.0 Berlin file (the tum-gis converter's, written against a draft
that named the target `app:uri`) must keep every texture its 2.0 twin keeps."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from itertools import count
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import Engine, text

from api.app import create_app
from ingest.pipeline import ingest_files
from tests.conftest import SHARED
from tests.tiles.conftest import textured_primitives, tiles_of

LYON = SHARED / "citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml"
BERLIN_2 = SHARED / "citygml2/berlin_moabit_1bldg/Berlin_Moabit_1Bldg_v2.gml"
BERLIN_3 = SHARED / "citygml3/berlin_moabit_1bldg/Berlin_Moabit_1Bldg_v3.gml"
UNFIT = "do not match their rings"

GML31, GML32 = "http://www.opengis.net/gml", "http://www.opengis.net/gml/3.2"
XLINK = "http://www.w3.org/1999/xlink"
V2 = "http://www.opengis.net/citygml/{}2.0"
CORE, APP, BLDG, CON, GEN = (
    f"http://www.opengis.net/citygml/{m}3.0"
    for m in ("", "appearance/", "building/", "construction/", "generics/")
)
NSMAP3 = {None: CORE, "app": APP, "bldg": BLDG, "con": CON, "gen": GEN, "gml": GML32}
NSMAP3["xlink"] = XLINK
NAMESPACES = {
    V2.format(""): CORE,
    V2.format("appearance/"): APP,
    V2.format("building/"): BLDG,
    V2.format("generics/"): GEN,
    GML31: GML32,
}


def _ns(el: etree._Element) -> str:
    return etree.QName(el).namespace or ""


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{name}")
    el.text = text
    return el


def _texture_association(target: etree._Element, ids: count) -> etree._Element:
    """A 2.0 `app:target` as 3.0's `app:textureParameterization` property: the association (a
    GML object, so with a gml:id), the target beside the coordinates, the rings as elements
    after all the coordinate lists (the schema's sequence)."""
    prop = etree.Element(f"{{{APP}}}textureParameterization")
    association = _sub(prop, APP, "TextureAssociation")
    association.set(f"{{{GML32}}}id", f"ta_{next(ids)}")
    _sub(association, APP, "target", target.get("uri"))
    parameterization = _sub(association, APP, "textureParameterization")
    coordinates = list(target.iter(f"{{{V2.format('appearance/')}}}textureCoordinates"))
    assert coordinates, "a 2.0 target without coordinates"
    tex_coord_list = _sub(parameterization, APP, "TexCoordList")
    for c in coordinates:
        _sub(tex_coord_list, APP, "textureCoordinates", c.text)
    for c in coordinates:
        _sub(tex_coord_list, APP, "ring", c.get("ring"))
    return prop


def _generic(old: etree._Element) -> etree._Element:
    """`gen:stringAttribute name="N"` as 3.0's `genericAttribute/gen:StringAttribute`."""
    prop = etree.Element(f"{{{CORE}}}genericAttribute")
    kind = _local(old)[0].upper() + _local(old)[1:]
    attribute = _sub(prop, GEN, kind)
    _sub(attribute, GEN, "name", old.get("name"))
    _sub(attribute, GEN, "value", next(iter(old)).text)
    return prop


def _height(old: etree._Element) -> etree._Element:
    """`bldg:measuredHeight` as 3.0's `con:height/con:Height`."""
    prop = etree.Element(f"{{{CON}}}height")
    height = _sub(prop, CON, "Height")
    _sub(height, CON, "highReference", "highestRoofEdge")
    _sub(height, CON, "lowReference", "lowestGroundPoint")
    _sub(height, CON, "status", "measured")
    _sub(height, CON, "value", old.text).set("uom", "m")
    return prop


def citygml3(source: Path, global_appearance: bool) -> bytes:
    """The CityGML 2.0 building file `source` written as CityGML 3.0: GML 3.2, the 3.0 core,
    building, construction, appearance and generics namespaces, boundary surfaces under
    `boundary`, parts under `buildingPart`, LoD geometry properties in the core, generic
    attributes and the measured height in their 3.0 forms, and every texture target as a
    TextureAssociation. With `global_appearance`, the appearances move to top-level
    `appearanceMember`s (where PLATEAU puts them)."""
    tree = etree.parse(str(source))
    old_app = V2.format("appearance/")
    old_bldg = V2.format("building/")
    ids = count()
    for target in list(tree.iter(f"{{{old_app}}}target")):
        target.getparent().replace(target, _texture_association(target, ids))
    for old in list(tree.iter(f"{{{V2.format('generics/')}}}*")):
        if _local(old).endswith("Attribute") and old.get("name"):
            old.getparent().replace(old, _generic(old))
    for old in list(tree.iter(f"{{{old_bldg}}}measuredHeight")):
        old.getparent().replace(old, _height(old))
    renames = {
        (old_app, "surfaceDataMember"): (APP, "surfaceData"),
        (old_app, "appearance"): (CORE, "appearance"),
        (old_app, "appearanceMember"): (CORE, "appearanceMember"),
        (old_bldg, "boundedBy"): (CORE, "boundary"),
        (old_bldg, "consistsOfBuildingPart"): (BLDG, "buildingPart"),
    }
    for el in list(tree.iter()):
        if not isinstance(el.tag, str):
            continue
        ns, name = _ns(el), _local(el)
        if (ns, name) in renames:
            ns, name = renames[(ns, name)]
        elif ns == old_bldg and name.endswith("Surface") and name[:1].isupper():
            ns = CON  # WallSurface, RoofSurface, GroundSurface: construction module
        elif ns == old_bldg and name.startswith("lod"):
            ns = CORE  # lod2Solid, lod2MultiSurface: core properties of spaces and surfaces
        else:
            ns = NAMESPACES.get(ns, ns)
        el.tag = f"{{{ns}}}{name}"
        for key in list(el.attrib):
            if key.startswith(f"{{{GML31}}}"):
                el.set(key.replace(GML31, GML32, 1), el.attrib.pop(key))
    old_root = tree.getroot()
    root = etree.Element(f"{{{CORE}}}CityModel", nsmap=NSMAP3)
    for child in list(old_root):
        root.append(child)
    if global_appearance:
        for prop in list(root.iter(f"{{{CORE}}}appearance")):
            prop.getparent().remove(prop)
            member = _sub(root, CORE, "appearanceMember")
            for appearance in list(prop):
                member.append(appearance)
    etree.cleanup_namespaces(root, top_nsmap=NSMAP3)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _textures(engine: Engine, city: str) -> dict[str, tuple]:
    """Per polygon-bearing geometry (object, index): its kept texture coordinates and its drawn
    (u, v) and texture per triangle."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.source_id, g.idx, g.structure -> 'textures', g.mesh_uvs, "
                "g.mesh_textures FROM object_geometry g JOIN city_object o "
                "ON o.city_code = g.city_code AND o.id = g.object_id WHERE g.city_code = :c"
            ),
            {"c": city},
        ).all()
    return {
        f"{r[0]}/{r[1]}": (r[2], bytes(r[3]) if r[3] else None, bytes(r[4]) if r[4] else None)
        for r in rows
    }


@pytest.fixture(scope="module")
def engine(new_database: Callable[[], Engine]) -> Engine:
    return new_database()


@pytest.mark.parametrize("global_appearance", [False, True], ids=["in the part", "top level"])
def test_a_textured_citygml3_house_lands_as_its_2_0_original(
    engine: Engine, tmp_path: Path, global_appearance: bool
) -> None:
    shutil.copy(LYON.with_suffix(".jpg"), tmp_path)
    path = tmp_path / LYON.name
    path.write_bytes(citygml3(LYON, global_appearance))
    body = path.read_text(encoding="utf-8")
    assert "citygml/2.0" not in body and f'"{GML31}"' not in body  # nothing of 2.0 is left
    assert body.count("<app:TextureAssociation") == 6 and "<app:target>#" in body
    suffix = "g" if global_appearance else "l"
    [old] = ingest_files(engine, [LYON], f"lyon2{suffix}", crs="EPSG:3946")
    [new] = ingest_files(engine, [path], f"lyon3{suffix}", crs="EPSG:3946")
    assert (old.format_version, new.format_version) == ("2.0", "3.0")
    assert new.counts_by_type == old.counts_by_type == {"Building": 1, "BuildingPart": 1}
    assert not [w for w in new.warnings if UNFIT in w or "missing" in w], new.warnings
    two, three = _textures(engine, f"lyon2{suffix}"), _textures(engine, f"lyon3{suffix}")
    assert three == two
    drawn = [v for v in three.values() if v[1]]
    assert len(drawn) == 1 and len(drawn[0][0]) == 6  # the part's 6 textured polygons
    # the 3.0 house is drawn textured: the image, byte for byte, at the file's (u, v)
    client = TestClient(create_app(engine=engine))
    parts = []
    for city in (f"lyon2{suffix}", f"lyon3{suffix}"):
        tileset = client.get(f"/collections/{city}/3dtiles/tileset.json").json()
        parts.append(
            [
                p
                for t in tiles_of(tileset)
                if "content" in t
                for p in textured_primitives(
                    client.get(f"/collections/{city}/3dtiles/{t['content']['uri']}").content
                )
            ]
        )
    image = hashlib.sha256(LYON.with_suffix(".jpg").read_bytes()).hexdigest()
    assert parts[1] and {hashlib.sha256(p[0]).hexdigest() for p in parts[1]} == {image}
    assert [p[3].tolist() for p in parts[1]] == [p[3].tolist() for p in parts[0]]


def test_the_real_citygml3_berlin_file_keeps_its_textures(engine: Engine) -> None:
    """The tum-gis 3.0 file names each target in `app:uri`; its images are not in the data, so
    its textures are kept (not drawn) exactly as its 2.0 original's are."""
    [old] = ingest_files(engine, [BERLIN_2], "berlin2")
    [new] = ingest_files(engine, [BERLIN_3], "berlin3")
    assert new.format_version == "3.0"
    xml = etree.parse(str(BERLIN_3))
    listed = {
        el.text.lstrip("#"): next(el.getparent().iter("{*}textureCoordinates")).text.split()
        for el in xml.iter(f"{{{APP}}}uri")
    }
    assert len(listed) == 5
    [(kept, _, _)] = [v for v in _textures(engine, "berlin3").values() if v[0]]
    assert {k: [str(x) for x in v] for k, v in _flat(kept).items()} == {
        k: [str(float(x)) for x in v] for k, v in listed.items()
    }
    [(kept_2, _, _)] = [v for v in _textures(engine, "berlin2").values() if v[0]]
    assert kept == kept_2
    assert not [w for w in new.warnings if UNFIT in w]
    missing = [w for w in new.warnings if "texture images are missing" in w]
    assert missing == [w for w in old.warnings if "texture images are missing" in w]
    assert missing and missing[0].startswith("5 of 5")


def _flat(textures: dict) -> dict[str, list[float]]:
    """Polygon id -> the coordinates of its (one-ring) polygon's first texture."""
    return {pid: next(iter(entries[0]["rings"].values())) for pid, entries in textures.items()}
