"""Edge cases of the CityGML, footprint and mesh readers, each on a small file written here: 2-D
coordinates, solids that link to whole surfaces, transport areas, latitude-first files written
longitude first, DTDs hidden far down, AdV CRS names, GeoJSON list properties, WKT-only CRSs,
and meshes with nothing to draw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pyproj import CRS
from sqlalchemy import Engine, text

from cim.crs import ADV_CODES, parse_crs
from cim.errors import IngestError
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files

NS = (
    'xmlns="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml" '
    'xmlns:bldg="http://www.opengis.net/citygml/building/2.0" '
    'xmlns:tran="http://www.opengis.net/citygml/transportation/2.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink"'
)


def _gml(tmp_path: Path, members: str, srs: str = "EPSG:25832") -> Path:
    path = tmp_path / "t.gml"
    path.write_text(
        f'<CityModel {NS}><gml:boundedBy><gml:Envelope srsName="{srs}"/></gml:boundedBy>'
        f"{members}</CityModel>",
        encoding="utf-8",
    )
    return path


def _square(x: float, y: float, z: float | None, pid: str = "") -> str:
    pts = [(x, y), (x + 10, y), (x + 10, y + 10), (x, y + 10), (x, y)]
    flat = " ".join(f"{a} {b}" + ("" if z is None else f" {z}") for a, b in pts)
    gid = f' gml:id="{pid}"' if pid else ""
    dim = ' srsDimension="2"' if z is None else ""
    return (
        f"<gml:Polygon{gid}{dim}><gml:exterior><gml:LinearRing><gml:posList>{flat}"
        "</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
    )


def _rows(engine: Engine, city: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT o.source_id, o.type, g.type, g.structure -> 'surface_types', "
                "ST_NPoints(g.geom) FROM city_object o LEFT JOIN object_geometry g "
                "ON g.city_code = o.city_code AND g.object_id = o.id WHERE o.city_code = :c "
                "ORDER BY o.source_id, g.idx"
            ),
            {"c": city},
        ).all()


def test_two_dimensional_polygons(engine: Engine, tmp_path: Path) -> None:
    path = _gml(
        tmp_path,
        '<cityObjectMember><bldg:Building gml:id="b"><bldg:lod0FootPrint>'
        f"<gml:MultiSurface><gml:surfaceMember>{_square(458000, 5438000, None)}"
        "</gml:surfaceMember></gml:MultiSurface></bldg:lod0FootPrint></bldg:Building>"
        "</cityObjectMember>",
    )
    ingest_files(engine, [path], "flat")
    [(_, _, gtype, _, points)] = _rows(engine, "flat")
    assert gtype == "MultiSurface" and points == 5  # four corners and the closing point


def test_a_bad_srs_dimension_is_refused(engine: Engine, tmp_path: Path) -> None:
    polygon = _square(458000, 5438000, 100.0).replace(
        "<gml:Polygon>", '<gml:Polygon srsDimension="4">'
    )
    path = _gml(
        tmp_path,
        '<cityObjectMember><bldg:Building gml:id="b"><bldg:lod1MultiSurface>'
        f"<gml:MultiSurface><gml:surfaceMember>{polygon}</gml:surfaceMember>"
        "</gml:MultiSurface></bldg:lod1MultiSurface></bldg:Building></cityObjectMember>",
    )
    with pytest.raises(IngestError, match="object 'b'.*srsDimension '4' is not 2 or 3"):
        ingest_files(engine, [path], "bad")


def test_a_solid_linking_to_a_whole_surface_gets_its_semantics_once(
    engine: Engine, tmp_path: Path
) -> None:
    """The solid links to the roof's CompositeSurface, whose polygons have no gml:id."""
    roof = (
        f'<gml:CompositeSurface gml:id="roof"><gml:surfaceMember>{_square(458000, 5438000, 10)}'
        "</gml:surfaceMember></gml:CompositeSurface>"
    )
    member = (
        '<cityObjectMember><bldg:Building gml:id="b"><bldg:boundedBy><bldg:RoofSurface>'
        f"<bldg:lod2MultiSurface>{roof}</bldg:lod2MultiSurface></bldg:RoofSurface>"
        "</bldg:boundedBy><bldg:lod2Solid><gml:Solid><gml:exterior><gml:CompositeSurface>"
        '<gml:surfaceMember xlink:href="#roof"/></gml:CompositeSurface></gml:exterior>'
        "</gml:Solid></bldg:lod2Solid></bldg:Building></cityObjectMember>"
    )
    ingest_files(engine, [_gml(tmp_path, member)], "s")
    rows = _rows(engine, "s")
    assert [(r[2], r[3]) for r in rows] == [("Solid", ["RoofSurface"])]  # not stored twice


def test_traffic_areas_are_objects_of_their_road(engine: Engine, tmp_path: Path) -> None:
    member = (
        '<cityObjectMember><tran:Road gml:id="r"><tran:trafficArea><tran:TrafficArea gml:id="t">'
        f"<tran:lod2MultiSurface><gml:MultiSurface><gml:surfaceMember>{_square(458000, 5438000, 1)}"
        "</gml:surfaceMember></gml:MultiSurface></tran:lod2MultiSurface></tran:TrafficArea>"
        "</tran:trafficArea></tran:Road></cityObjectMember>"
    )
    ingest_files(engine, [_gml(tmp_path, member)], "road")
    rows = _rows(engine, "road")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("r", "Road", None),
        ("t", "TrafficArea", "MultiSurface"),
    ]


def test_latitude_first_crs_written_longitude_first(engine: Engine, tmp_path: Path) -> None:
    """EPSG:4326 declares latitude first; many files write longitude first anyway. Both orders
    fit the world, so CIM follows the CRS and says so; --axis-order fixes it."""
    ring = "13.40 52.52 30 13.41 52.52 30 13.41 52.53 30 13.40 52.53 30 13.40 52.52 30"
    polygon = (
        "<gml:Polygon><gml:exterior><gml:LinearRing><gml:posList>"
        + ring
        + "</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon>"
    )
    member = (
        '<cityObjectMember><bldg:Building gml:id="b"><bldg:lod1MultiSurface><gml:MultiSurface>'
        f"<gml:surfaceMember>{polygon}</gml:surfaceMember></gml:MultiSurface>"
        "</bldg:lod1MultiSurface></bldg:Building></cityObjectMember>"
    )
    path = _gml(tmp_path, member, "urn:ogc:def:crs:EPSG::4326")
    [report] = ingest_files(engine, [path], "berlin-a")
    assert any("both axis orders" in w and "--axis-order east-first" in w for w in report.warnings)
    ingest_files(engine, [path], "berlin-b", options=ReadOptions(axis_order="east-first"))
    with engine.connect() as conn:
        lon = conn.execute(
            text("SELECT ST_X(ST_Centroid(bbox)) FROM city_object WHERE city_code = 'berlin-b'")
        ).scalar_one()
    assert 13.40 < lon < 13.41  # Berlin


def test_a_dtd_far_down_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "late.gml"
    path.write_text(
        '<?xml version="1.0"?><!-- http://www.opengis.net/citygml/2.0 -->'
        + " " * (1 << 21)
        + '<!DOCTYPE CityModel [<!ENTITY x "INJECTED">]>'
        + f'<CityModel {NS}><cityObjectMember><bldg:Building gml:id="b" name="&x;"/>'
        "</cityObjectMember></CityModel>"
    )
    with pytest.raises(IngestError, match="document type declaration"):
        ingest_files(engine, [path], "late", crs="EPSG:25832")


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("ETRS89_UTM32", "UTM zone 32N"),
        ("ETRS89_UTM33", "UTM zone 33N"),
        ("DE_DHDN_3GK2", "Gauss-Kruger zone 2"),
        ("DE_DHDN_3GK3", "Gauss-Kruger zone 3"),
        ("DE_DHDN_3GK4", "Gauss-Kruger zone 4"),
        ("DE_DHDN_3GK5", "Gauss-Kruger zone 5"),
        ("DE_DHHN92_NH", "DHHN92"),
        ("DE_DHHN2016_NH", "DHHN2016"),
    ],
)
def test_adv_names_map_to_their_epsg_crs(name: str, words: str) -> None:
    assert words in CRS.from_epsg(ADV_CODES[name]).name
    assert words in parse_crs(f"urn:adv:crs:{name}").name


def test_geojson_lists_and_wkt_crs(engine: Engine, tmp_path: Path) -> None:
    wkt = CRS.from_proj4(
        "+proj=tmerc +lat_0=31 +lon_0=121.5 +k=1 +x_0=0 +y_0=0 +ellps=GRS80 +units=m"
    ).to_wkt()
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"height": 9, "tags": [1, 2, 3]},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [20, 0], [20, 20], [0, 20], [0, 0]]],
                },
            }
        ],
    }
    path = tmp_path / "local.geojson"
    path.write_text(json.dumps(doc))
    import pyogrio

    gpkg = tmp_path / "local.gpkg"
    meta, _, wkb, fields = pyogrio.raw.read(path)
    pyogrio.raw.write(
        gpkg,
        geometry=wkb,
        field_data=fields,
        fields=meta["fields"],
        geometry_type="Polygon",
        crs=wkt,
        driver="GPKG",
    )
    [report] = ingest_files(engine, [gpkg], "wkt")
    assert report.object_count == 1
    ingest_files(engine, [path], "lists", crs="EPSG:4326")
    with engine.connect() as conn:
        attributes = conn.execute(
            text("SELECT attributes FROM city_object WHERE city_code = 'lists'")
        ).scalar_one()
        lon, lat = conn.execute(
            text(
                "SELECT ST_X(ST_Centroid(bbox)), ST_Y(ST_Centroid(bbox)) FROM city_object "
                "WHERE city_code = 'wkt'"
            )
        ).one()
    assert attributes["tags"] == [1, 2, 3]
    assert np.isclose(lon, 121.5, atol=1e-3) and np.isclose(lat, 31.0, atol=1e-3)


def test_a_mesh_with_nothing_to_draw_is_refused(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "lines.obj"
    path.write_text("v 0 0 0\nv 1 0 0\nv 1 1 0\nl 1 2 3\n")
    with pytest.raises(IngestError, match="no (triangles|geometry)"):
        ingest_files(engine, [path], "m", options=ReadOptions(origin=(4.8, 45.7, 200.0)))
