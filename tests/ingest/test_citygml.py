"""CityGML 1.0-3.0 through `cim ingest`: every CityGML file of ../shared/data lands with as many
city objects as the file has features (counted here from the XML), semantic surfaces and
attributes are kept, the 2.0 and 3.0 encodings of the same buildings give the same vertices, the
coordinates are where pyproj puts them (latitude-first EPSG:6697 included), and hostile XML is
refused before it can read a file, open a connection or expand an entity."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from lxml import etree
from pyproj import Transformer
from sqlalchemy import Engine, text

from cim.errors import IngestError
from ingest.pipeline import ingest_files
from tests.conftest import SHARED
from tests.proj_reference import proj_placement

GML_FILES = sorted((SHARED / "citygml2").glob("*/*.gml")) + sorted(
    (SHARED / "citygml3").glob("*/*.gml")
)
NO_CRS = {"LYON_1ER_BATI_2015_small_house.gml": "EPSG:3946"}  # MANIFEST: no srsName, EPSG:3946
FEATURES = {"Building", "BuildingPart", "ReliefFeature", "TINRelief"}
GML_ID = {"{http://www.opengis.net/gml}id", "{http://www.opengis.net/gml/3.2}id"}
TOLERANCE_M = 0.05


def _features_in(path: Path) -> dict[str, str]:
    """gml:id -> type of every feature element in the file, counted independently."""
    out = {}
    for el in etree.parse(str(path)).iter():
        if isinstance(el.tag, str) and el.tag.rsplit("}", 1)[-1] in FEATURES:
            gid = next((el.get(a) for a in GML_ID if el.get(a)), None)
            assert gid, f"{path.name}: a {el.tag} without gml:id"
            out[gid] = el.tag.rsplit("}", 1)[-1]
    return out


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    for n, path in enumerate(GML_FILES):
        ingest_files(engine, [path], f"gml{n}", crs=NO_CRS.get(path.name))
    return engine


def _objects(engine: Engine, city: str) -> dict[str, tuple[str, dict, list[str]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT source_id, type, attributes, children FROM city_object WHERE city_code = :c"
            ),
            {"c": city},
        ).all()
    return {r[0]: (r[1], r[2], list(r[3])) for r in rows}


@pytest.mark.parametrize("n", range(len(GML_FILES)), ids=[p.name for p in GML_FILES])
def test_every_feature_lands(db: Engine, n: int) -> None:
    stored = _objects(db, f"gml{n}")
    expected = _features_in(GML_FILES[n])
    assert {k: v[0] for k, v in stored.items()} == expected


def test_semantics_attributes_and_parts_are_kept(db: Engine) -> None:
    n = next(
        i
        for i, p in enumerate(GML_FILES)
        if "citygml2" in str(p) and p.name == "Building_and_garage_LOD2-EPSG25832.gml"
    )
    objects = _objects(db, f"gml{n}")
    building = next(v for v in objects.values() if v[0] == "Building")
    xml = etree.parse(str(GML_FILES[n]))
    height = float(next(xml.iter("{*}measuredHeight")).text)
    year = int(next(xml.iter("{*}yearOfConstruction")).text)
    locality = next(xml.iter("{*}LocalityName")).text
    assert building[1]["measuredHeight"] == height and building[1]["yearOfConstruction"] == year
    assert building[1]["address"][0]["LocalityName"] == locality
    assert len(building[2]) == 1 and objects[building[2][0]][0] == "BuildingPart"
    with db.connect() as conn:
        types = conn.execute(
            text(
                "SELECT g.structure -> 'surface_types' FROM object_geometry g JOIN city_object o "
                "ON o.city_code = g.city_code AND o.id = g.object_id "
                "WHERE o.city_code = :c AND o.type = 'Building'"
            ),
            {"c": f"gml{n}"},
        ).scalar_one()
    assert sorted(set(types)) == ["GroundSurface", "RoofSurface", "WallSurface"]
    assert len(types) == 8  # every surface of the solid has its semantic surface


def test_generic_attributes_of_plateau(db: Engine) -> None:
    n = next(i for i, p in enumerate(GML_FILES) if "tokyo" in str(p))
    [(type_, attributes, _)] = _objects(db, f"gml{n}").values()
    assert type_ == "Building"
    xml = etree.parse(str(GML_FILES[n]))
    assert attributes["measuredHeight"] == float(next(xml.iter("{*}measuredHeight")).text)
    generic = {
        el.get("name"): next(el.iter("{*}value")).text
        for el in xml.iter("{http://www.opengis.net/citygml/generics/2.0}stringAttribute")
    }
    assert generic  # PLATEAU carries generic attributes
    for name, value in generic.items():
        assert attributes[name] == value, name  # string attributes stay text ("29")
    assert attributes["address"][0]["CountryName"] == next(xml.iter("{*}CountryName")).text


def _vertices(engine: Engine, city: str) -> dict[str, np.ndarray]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT o.source_id, ST_X(d.geom), ST_Y(d.geom), ST_Z(d.geom) "
                "FROM city_object o JOIN object_geometry g "
                "ON o.city_code = g.city_code AND o.id = g.object_id, "
                "LATERAL ST_DumpPoints(g.geom) d WHERE o.city_code = :c"
            ),
            {"c": city},
        ).all()
    out: dict[str, list] = {}
    for sid, x, y, z in rows:
        out.setdefault(sid, []).append((x, y, z))
    return {k: np.array(sorted(v)) for k, v in out.items()}


@pytest.mark.parametrize(
    "pair",
    [
        "berlin_moabit_1bldg",
        "sig3d_building_lod2/Building_LOD2",
        "sig3d_building_lod2/Building_and_garage",
    ],
)
def test_citygml2_and_3_give_the_same_vertices(db: Engine, pair: str) -> None:
    two, three = (
        next(i for i, p in enumerate(GML_FILES) if f"citygml{v}/" in str(p) and pair in str(p))
        for v in (2, 3)
    )
    a, b = _vertices(db, f"gml{two}"), _vertices(db, f"gml{three}")
    assert a.keys() == b.keys() and a
    for key in a:
        assert a[key].shape == b[key].shape, key
        # 1 mm: 1e-8 degree is 1.1 mm of latitude
        assert np.abs(a[key][:, :2] - b[key][:, :2]).max() < 1e-8, key
        assert np.abs(a[key][:, 2] - b[key][:, 2]).max() < 1e-3, key


def _first_ring(path: Path) -> np.ndarray:
    for el in etree.parse(str(path)).iter("{*}posList"):
        v = np.array(el.text.split(), dtype=float).reshape(-1, 3)
        return v[:-1]
    raise AssertionError("no posList")


def _metres(a: np.ndarray, b: np.ndarray) -> float:
    t = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    pa = np.column_stack(t.transform(a[:, 0], a[:, 1], a[:, 2]))
    pb = np.column_stack(t.transform(b[:, 0], b[:, 1], b[:, 2]))
    return float(np.linalg.norm(pa - pb, axis=1).max())


@pytest.mark.parametrize(
    ("name", "crs", "lat_first"),
    [
        ("53394517_bldg_6697_2_op_CityGML2.gml", "EPSG:6697", True),
        ("Building_LOD2-EPSG25832.gml", "EPSG:25832+5783", False),
        ("LYON_1ER_BATI_2015_small_house.gml", "EPSG:3946", False),
    ],
)
def test_placement_matches_pyproj(db: Engine, name: str, crs: str, lat_first: bool) -> None:
    n = next(i for i, p in enumerate(GML_FILES) if p.name == name)
    ring = _first_ring(GML_FILES[n])
    x, y = (ring[:, 1], ring[:, 0]) if lat_first else (ring[:, 0], ring[:, 1])
    expected = proj_placement(crs, x, y, ring[:, 2])  # heights above sea level: + geoid
    stored = np.vstack(list(_vertices(db, f"gml{n}").values()))
    nearest = np.array([stored[np.argmin(np.abs(stored - e).sum(axis=1))] for e in expected])
    assert _metres(nearest, expected) < TOLERANCE_M
    if lat_first:  # Tokyo, not the Gulf of Aden
        assert 139 < expected[0, 0] < 140 and 35 < expected[0, 1] < 36


def test_a_file_without_crs_asks_for_one(engine: Engine) -> None:
    path = next(p for p in GML_FILES if p.name in NO_CRS)
    with pytest.raises(IngestError, match="declares no CRS.*--crs"):
        ingest_files(engine, [path], "x")


# ---------------------------------------------------------------- hostile XML
class _Listener:
    """A TCP port that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


CITYMODEL = (
    '<CityModel xmlns="http://www.opengis.net/citygml/2.0" '
    'xmlns:gml="http://www.opengis.net/gml" xmlns:bldg="http://www.opengis.net/citygml/building/2.0">'
    '<cityObjectMember><bldg:Building gml:id="b1"><gml:name>&x;</gml:name></bldg:Building>'
    "</cityObjectMember></CityModel>"
)


def _hostile(tmp_path: Path, port: int, secret: Path) -> dict[str, str]:
    laughs = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{k} "{("&a" + str(k - 1) + ";") * 10}">' for k in range(1, 10)
    )
    return {
        "external entity": f'<!DOCTYPE CityModel [<!ENTITY x SYSTEM "file://{secret}">]>',
        "DTD from a URL": f'<!DOCTYPE CityModel SYSTEM "http://127.0.0.1:{port}/evil.dtd">',
        "parameter entity from a URL": (
            f'<!DOCTYPE CityModel [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p.dtd"> %p;'
            '<!ENTITY x "y">]>'
        ),
        "entity expansion bomb": f'<!DOCTYPE CityModel [{laughs}<!ENTITY x "&a9;">]>',
    }


def test_hostile_xml_is_refused_without_reading_or_connecting(
    engine: Engine, tmp_path: Path
) -> None:
    import resource

    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    listener = _Listener()
    try:
        for label, doctype in _hostile(tmp_path, listener.port, secret).items():
            path = tmp_path / f"{label.replace(' ', '_')}.gml"
            path.write_text(f'<?xml version="1.0"?>\n{doctype}\n{CITYMODEL}')
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            with pytest.raises(IngestError, match="document type declaration") as err:
                ingest_files(engine, [path], "hostile")
            assert str(path) in str(err.value), label
            grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
            assert grown_mb < 50, (label, grown_mb)
    finally:
        listener.close()
    assert listener.hits == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM city_object")).scalar_one() == 0


def test_a_doctype_after_a_long_prolog_is_still_harmless(engine: Engine, tmp_path: Path) -> None:
    """Past the first megabyte the parser itself resolves no entity and loads no DTD."""
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    listener = _Listener()
    path = tmp_path / "late.gml"
    path.write_text(
        '<?xml version="1.0"?>\n<!--' + "x" * (1 << 21) + "-->\n"
        f'<!DOCTYPE CityModel [<!ENTITY x SYSTEM "file://{secret}">'
        f'<!ENTITY % p SYSTEM "http://127.0.0.1:{listener.port}/p.dtd"> %p;]>\n{CITYMODEL}'
    )
    try:
        try:
            ingest_files(engine, [path], "late", crs="EPSG:25832")
        except IngestError:
            pass  # refusing is fine too
    finally:
        listener.close()
    assert listener.hits == 0
    with engine.connect() as conn:
        values = conn.execute(text("SELECT attributes::text FROM city_object")).scalars().all()
    assert not any("TOP-SECRET" in v for v in values)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "<CityModel xmlns='http://www.opengis.net/citygml/2.0'><cityObjectMember>",
            "not well-formed XML",
        ),
        ("<Other xmlns='http://www.opengis.net/citygml/2.0'/>", "root element is 'Other'"),
        (
            CITYMODEL.replace("&x;", "n").replace(
                "</bldg:Building>",
                "<bldg:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface><gml:surfaceMember>"
                "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>1 2 3 4 5</gml:posList>"
                "</gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember>"
                "</gml:CompositeSurface></gml:exterior></gml:Solid></bldg:lod1Solid></bldg:Building>",
            ),
            "object 'b1': 5 numbers do not make 3-D coordinates",
        ),
    ],
)
def test_broken_citygml_is_refused_with_the_reason(
    engine: Engine, tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "broken.gml"
    path.write_text(body)
    with pytest.raises(IngestError, match=message):
        ingest_files(engine, [path], "broken", crs="EPSG:25832")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM dataset")).scalar_one() == 0


def test_the_demo_city_in_citygml_equals_its_cityjson_twin(engine: Engine, tmp_path: Path) -> None:
    """The same generated city written as CityGML 2.0 (solids referring to their semantic
    surfaces by xlink, trees as implicit geometries of one template, generic attributes) and as
    CityJSON lands as the same objects, attributes, semantics and vertices."""
    from demo.city import generate_city

    gml = generate_city(tmp_path / "demo.gml", buildings=200, seed=9, fmt="citygml")
    cj = generate_city(tmp_path / "demo.city.json", buildings=200, seed=9)
    assert gml.counts == cj.counts
    [report] = ingest_files(engine, [gml.path], "gml")
    ingest_files(engine, [cj.path], "json")
    assert report.counts_by_type == cj.counts
    assert any("easting (longitude) first" in w for w in report.warnings)
    rows = {}
    with engine.connect() as conn:
        for city in ("gml", "json"):
            rows[city] = {
                r[0]: r[1:]
                for r in conn.execute(
                    text(
                        "SELECT o.source_id, o.type, o.attributes, "
                        "(SELECT array_agg(g.structure -> 'surface_types' ORDER BY g.idx) "
                        " FROM object_geometry g WHERE g.city_code = o.city_code "
                        " AND g.object_id = o.id)::text FROM city_object o WHERE o.city_code = :c"
                    ),
                    {"c": city},
                )
            }
    # CityGML has no boolean attribute: the demo writes true as the string attribute "true",
    # which stays text, as every string attribute does
    rows["json"] = {
        k: (v[0], {n: _bool_as_text(x) for n, x in v[1].items()}, *v[2:])
        for k, v in rows["json"].items()
    }
    assert rows["gml"] == rows["json"]
    a, b = _vertices(engine, "gml"), _vertices(engine, "json")
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst < 1e-8  # degrees and metres: the same millimetre coordinates


def _bool_as_text(value: object) -> object:
    return ("true" if value else "false") if isinstance(value, bool) else value


def test_appearances_materials_drawn_textures_kept(engine: Engine) -> None:
    berlin = next(p for p in GML_FILES if p.name == "Berlin_Moabit_1Bldg_v2.gml")
    [report] = ingest_files(engine, [berlin], "berlin")
    xml = etree.parse(str(berlin))
    material = next(xml.iter("{*}X3DMaterial"))
    rgb = [float(x) for x in next(material.iter("{*}diffuseColor")).text.split()]
    target = next(material.iter("{*}target")).text.lstrip("#")
    targeted = [el for el in xml.iter() if el.get("{http://www.opengis.net/gml}id") == target][0]
    n_target_polygons = len(list(targeted.iter("{*}Polygon")))
    images = [el.text for el in xml.iter("{*}imageURI")]
    with engine.connect() as conn:
        appearance, colours = conn.execute(
            text(
                "SELECT d.appearance, (SELECT string_agg(encode(g.mesh_colours, 'hex'), '') "
                "FROM object_geometry g WHERE g.city_code = d.city_code) FROM dataset d "
                "WHERE d.city_code = 'berlin'"
            )
        ).one()
    assert [t["image"] for t in appearance["textures"]] == images
    assert appearance["materials"][0]["diffuseColor"] == rgb
    hexcolour = "".join(f"{int(v * 255):02x}" for v in rgb)
    triangles = [colours[i : i + 6] for i in range(0, len(colours), 6)]
    assert triangles.count(hexcolour) >= n_target_polygons  # the roof in its material colour
    assert any(
        f"{len(images)} of {len(images)} texture images are missing" in w for w in report.warnings
    )
    # a texture whose image is there: its coordinates are kept ring by ring, as in the file
    lyon = next(p for p in GML_FILES if p.name in NO_CRS)
    [report] = ingest_files(engine, [lyon], "lyon", crs=NO_CRS[lyon.name])
    assert not any("missing" in w for w in report.warnings)
    coords = next(etree.parse(str(lyon)).iter("{*}textureCoordinates"))
    ring = coords.get("ring").lstrip("#")
    with engine.connect() as conn:
        kept = conn.execute(
            text(
                "SELECT t -> 'rings' -> :ring FROM object_geometry g, "
                "jsonb_each(g.structure -> 'textures') p, jsonb_array_elements(p.value) t "
                "WHERE g.city_code = 'lyon' AND t -> 'rings' ? :ring"
            ),
            {"ring": ring},
        ).scalar_one()
    assert kept == [float(x) for x in coords.text.split()]


def test_global_appearances_are_linked_to_the_polygons_they_name(db: Engine) -> None:
    """PLATEAU puts its one Appearance after the building, at the document's top level."""
    n = next(i for i, p in enumerate(GML_FILES) if "tokyo" in str(p))
    xml = etree.parse(str(GML_FILES[n]))
    targets = {t.get("uri").lstrip("#") for t in xml.iter("{*}target") if t.get("uri")}
    with db.connect() as conn:
        linked, metadata = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM object_geometry g, "
                "jsonb_object_keys(g.structure -> 'textures') k WHERE g.city_code = d.city_code), "
                "d.file_metadata -> 'global_appearances' FROM dataset d WHERE d.city_code = :c"
            ),
            {"c": f"gml{n}"},
        ).one()
    assert linked == len(targets) == metadata["linked_polygons"]


def test_citygml_1_0_namespaces_read_the_same(engine: Engine, tmp_path: Path) -> None:
    """No CityGML 1.0 file is in ../shared/data: the SIG3D 2.0 example with its namespaces
    turned 1.0 (the encodings of these elements are the same) must give the same objects."""
    source = next(
        p for p in GML_FILES if "citygml2" in str(p) and p.name.startswith("Building_and")
    )
    text10 = source.read_text(encoding="utf-8").replace("/2.0", "/1.0")
    assert "http://www.opengis.net/citygml/1.0" in text10
    path = tmp_path / "v1.gml"
    path.write_text(text10, encoding="utf-8")
    [old] = ingest_files(engine, [source], "v2")
    [new] = ingest_files(engine, [path], "v1")
    assert new.format_version == "1.0" and old.format_version == "2.0"
    assert (
        new.counts_by_type
        == old.counts_by_type
        == {"Building": 1, "BuildingPart": 1, "ReliefFeature": 1, "TINRelief": 1}
    )
    a, b = _vertices(engine, "v1"), _vertices(engine, "v2")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
