"""Textures reach the 3D Tiles: the textured Lyon house (CityGML, EPSG:3946), the PLATEAU building
(CityGML, EPSG:6697 with a texture atlas) and the Rotterdam building (CityJSON, one of six images
present) are served as GLB whose image is the source image byte for byte, whose texture
coordinates are the file's own at the file's vertices, and which the Khronos validator passes.
Image names that point outside the model's folder, to the network, or at something that is not
an image are reported and never read into the database."""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from lxml import etree
from pyproj import CRS, Transformer
from sqlalchemy import Engine, text

from api.app import create_app
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from ingest.textures import MAX_SIDE, TextureImages
from tests.conftest import SHARED
from tests.proj_reference import proj_placement
from tests.tiles.conftest import (
    _accessor,
    assert_served_tilesets_valid,
    textured_primitives,
    tiles_of,
    validate_glbs,
)
from tiles.gltf import read_glb

LYON = SHARED / "citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml"
PLATEAU = SHARED / "citygml2/tokyo_plateau_lod2_textured/53394517_bldg_6697_2_op_CityGML2.gml"
ROTTERDAM = SHARED / "cityjson/rotterdam_one_textured_v1.1/rotterdam_one.city.json"
GML_ID = ("{http://www.opengis.net/gml}id", "{http://www.opengis.net/gml/3.2}id")
# source CRS -> Earth-centred, as the reader places them (EPSG:3946 has no vertical datum: taken
# as ellipsoidal; EPSG:6697 heights are above sea level: the geoid is added, as PROJ gives it)
TO_ECEF = {
    "lyon": Transformer.from_crs(CRS("EPSG:3946").to_3d(), "EPSG:4978", always_xy=True),
    "plateau": Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True),
}
LAT_FIRST = {"plateau": "EPSG:6697"}
RAILWAY = SHARED / "mesh/kit_railway_glb/railway.glb"  # 28 embedded textures
FILES = {
    "lyon": (LYON, "EPSG:3946", None),
    "plateau": (PLATEAU, None, None),
    "rdam": (ROTTERDAM, None, None),
    "rail": (RAILWAY, None, ReadOptions(origin=(8.4, 49.0, 110.0))),
}


@pytest.fixture(scope="module")
def served(new_database: Callable[[], Engine]) -> tuple[Engine, dict[str, list[bytes]]]:
    """Each file ingested into its own city, and the content of every tile, over HTTP."""
    engine = new_database()
    client = TestClient(create_app(engine=engine))
    contents = {}
    for city, (path, crs, options) in FILES.items():
        ingest_files(engine, [path], city, crs=crs, options=options)
        tileset = client.get(f"/collections/{city}/3dtiles/tileset.json").json()
        contents[city] = [
            client.get(f"/collections/{city}/3dtiles/{t['content']['uri']}").content
            for t in tiles_of(tileset)
            if "content" in t
        ]
    return engine, contents


def _gml_textured_rings(path: Path) -> tuple[list[Path], list[tuple[np.ndarray, np.ndarray]]]:
    """The file's texture images, and each textured ring's coordinates with its (u, v) list,
    read with lxml alone (PLATEAU lists each ring's coordinates twice: the first counts)."""
    tree = etree.parse(str(path))
    rings = {r.get(GML_ID[0]) or r.get(GML_ID[1]): r for r in tree.iter("{*}LinearRing")}
    images = sorted({path.parent / e.text.strip() for e in tree.iter("{*}imageURI")})
    out = {}
    for coords in tree.iter("{*}textureCoordinates"):
        key = coords.get("ring").lstrip("#")
        if key in out:
            continue
        xyz = np.array(next(rings[key].iter("{*}posList")).text.split(), dtype=float)
        uv = np.array(coords.text.split(), dtype=float).reshape(-1, 2)
        assert len(uv) * 3 == len(xyz)
        out[key] = (xyz.reshape(-1, 3), uv)
    return images, list(out.values())


@pytest.mark.parametrize("city", ["lyon", "plateau"])
def test_citygml_texture_image_and_coordinates_reach_the_glb(
    served: tuple[Engine, dict[str, list[bytes]]], city: str
) -> None:
    _, contents = served
    images, rings = _gml_textured_rings(FILES[city][0])
    [image] = images
    parts = [p for data in contents[city] for p in textured_primitives(data)]
    assert parts, "no textured primitive"
    assert {hashlib.sha256(p[0]).hexdigest() for p in parts} == {
        hashlib.sha256(image.read_bytes()).hexdigest()
    }
    assert {p[1] for p in parts} == {"image/jpeg"}
    # every textured vertex is a vertex of a textured ring of the file (within 5 cm), and its
    # (u, v) is that ring vertex's, with v turned to glTF's top-left origin
    src = np.concatenate([xyz for xyz, _ in rings])
    src_uv = np.concatenate([uv for _, uv in rings])
    if city in LAT_FIRST:
        src = proj_placement(LAT_FIRST[city], src[:, 1], src[:, 0], src[:, 2])
    x, y, z = TO_ECEF[city].transform(src[:, 0], src[:, 1], src[:, 2])
    file_ecef = np.column_stack((x, y, z))
    glb_ecef = np.concatenate([p[2] for p in parts])
    glb_uv = np.concatenate([p[3] for p in parts])
    # distinct ring vertices of the file (closing repeats dropped) = vertices drawn textured
    distinct = sum(len(xyz) - 1 for xyz, _ in rings)
    assert len(glb_ecef) == distinct
    for point, uv in zip(glb_ecef, glb_uv, strict=True):
        distance = np.linalg.norm(file_ecef - point, axis=1)
        near = distance < 0.05
        assert near.any(), f"textured vertex {point} is not a vertex of the file"
        candidates = src_uv[near]
        wanted = np.array([uv[0], 1.0 - uv[1]])
        assert np.abs(candidates - wanted).max(axis=1).min() < 1e-6


def test_every_textured_tile_passes_the_khronos_validator(
    served: tuple[Engine, dict[str, list[bytes]]], tmp_path: Path
) -> None:
    _, contents = served
    paths = []
    for city, datas in contents.items():
        for n, data in enumerate(datas):
            paths.append(tmp_path / f"{city}_{n}.glb")
            paths[-1].write_bytes(data)
    reports = validate_glbs(paths)
    assert len(reports) == len(paths)
    assert all(r["decoded"] for r in reports.values())  # its meshopt-decoded twin passed too
    assert {p: r for p, r in reports.items() if r["errors"] or r["warnings"]} == {}


def test_every_textured_tileset_passes_the_3d_tiles_validator(
    served: tuple[Engine, dict[str, list[bytes]]], tmp_path: Path
) -> None:
    engine, contents = served
    assert_served_tilesets_valid(engine, contents, tmp_path)


def test_cityjson_textures_drawn_where_the_image_exists(
    served: tuple[Engine, dict[str, list[bytes]]],
) -> None:
    engine, contents = served
    doc = json.loads(ROTTERDAM.read_text())
    names = [t["image"] for t in doc["appearance"]["textures"]]
    present = [n for n, name in enumerate(names) if (ROTTERDAM.parent / name).exists()]
    assert len(present) == 1  # MANIFEST: only 1 of the 6 images exists upstream
    [geometry] = [g for o in doc["CityObjects"].values() for g in o.get("geometry", [])]
    values = next(iter(geometry["texture"].values()))["values"]
    table = np.array(doc["appearance"]["vertices-texture"])
    rings = [ring for surface in values for ring in surface if ring[0] in present]
    parts = [p for data in contents["rdam"] for p in textured_primitives(data)]
    assert [p[0] for p in parts] == [(ROTTERDAM.parent / names[present[0]]).read_bytes()]
    uv = parts[0][3]
    assert len(uv) == sum(len(r) - 1 for r in rings)
    wanted = {tuple(np.round(table[i], 6)) for r in rings for i in r[1:]}
    assert {(round(u, 6), round(1.0 - v, 6)) for u, v in uv.tolist()} == wanted
    with engine.connect() as conn:
        warnings = conn.execute(
            text("SELECT warnings FROM dataset WHERE city_code = 'rdam'")
        ).scalar_one()
    assert any(
        f"{len(names) - 1} of {len(names)} texture images are missing" in w for w in warnings
    )


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims a size (its pixels are never there)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_hostile_and_odd_image_names_are_reported_not_read(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "secret.jpg").write_bytes(LYON.with_suffix(".jpg").read_bytes())
    (folder / "fake.jpg").write_text("not an image")
    (folder / "bomb.png").write_bytes(_png_header(20_000, 20_000))
    Image.new("RGB", (MAX_SIDE + 100, 50), (200, 30, 30)).save(folder / "wide.tif")
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(folder / "clear.gif")
    names = ["../secret.jpg", "/etc/passwd", "http://127.0.0.1:9/x.jpg", "fake.jpg", "bomb.png"]
    names += ["wide.tif", "clear.gif", "absent.jpg", "nul\x00.png", "http://[x/t.png"]
    images = TextureImages([{"image": n} for n in names], folder)
    stored = list(images)
    assert [(i.idx, i.source, i.mime) for i in stored] == [
        (5, "wide.tif", "image/jpeg"),
        (6, "clear.gif", "image/png"),
    ]
    assert (stored[0].width, stored[0].height) == (
        MAX_SIDE,
        round(50 * MAX_SIDE / (MAX_SIDE + 100)),
    )
    refused = "\n".join(images.refused)
    assert "../secret.jpg: outside the folder" in refused
    assert "/etc/passwd: outside the folder" in refused
    assert "http://127.0.0.1:9/x.jpg: not a local file" in refused
    assert "fake.jpg: not a readable image" in refused
    assert "bomb.png: too many pixels for a texture" in refused
    assert "'nul\\x00.png': not a usable file name" in refused
    assert "'http://[x/t.png': not a usable file name" in refused
    assert images.missing == ["absent.jpg"]
    report = "\n".join(images.report())
    assert "1 of 10 texture images are missing (absent.jpg)" in report
    assert "2 texture images were re-encoded" in report


def test_mesh_textures_reach_the_glb(served: tuple[Engine, dict[str, list[bytes]]]) -> None:
    """Each of the glTF's texture images is drawn with the texture coordinates its primitives
    have in the file (glTF's own convention both sides), at the image's size. They all repeat
    (coordinates far outside 0-1), so none can join an atlas: 28 textured primitives."""
    from io import BytesIO

    from PIL import Image

    doc, binary = read_glb(RAILWAY.read_bytes())
    wanted: dict[int, list[np.ndarray]] = {}  # source image -> corner (u, v) of its triangles
    for mesh in doc["meshes"]:
        for p in mesh["primitives"]:
            texture = doc["materials"][p["material"]]["pbrMetallicRoughness"]["baseColorTexture"]
            source = doc["textures"][texture["index"]]["source"]
            corners = _accessor(doc, binary, p["indices"]).astype(int)
            wanted.setdefault(source, []).append(
                _accessor(doc, binary, p["attributes"]["TEXCOORD_0"])[corners]
            )
    sizes = {}
    for source, image in enumerate(doc["images"]):
        view = doc["bufferViews"][image["bufferView"]]
        data = binary[view.get("byteOffset", 0) : view.get("byteOffset", 0) + view["byteLength"]]
        sizes[source] = Image.open(BytesIO(data)).size
    _, contents = served
    parts = [p for data in contents["rail"] for p in textured_primitives(data)]
    assert len(parts) == len(wanted) == 28
    unmatched = dict(wanted)
    for image, _, _, uv in parts:
        got = np.array(sorted(map(tuple, uv.tolist())))
        match = [
            s
            for s, corners in unmatched.items()
            if len(got) == sum(map(len, corners))
            and np.abs(np.array(sorted(map(tuple, np.concatenate(corners).tolist()))) - got).max()
            < 1e-6
        ]
        assert match, "a textured part's coordinates are none of the file's"
        assert Image.open(BytesIO(image)).size == sizes[match[0]]
        del unmatched[match[0]]


def test_small_textures_share_one_atlas(new_database: Callable[[], Engine], tmp_path: Path) -> None:
    """The Rotterdam building with its six images present (made here: one solid colour each)
    is drawn from one atlas: every textured corner of the file shows its own image's colour."""
    from PIL import Image

    folder = tmp_path / "rotterdam"
    (folder / "appearances").mkdir(parents=True)
    doc = json.loads(ROTTERDAM.read_text())
    colours = [
        (230, 20, 20),
        (20, 200, 20),
        (20, 20, 230),
        (240, 240, 0),
        (0, 220, 220),
        (200, 0, 200),
    ]
    for texture, colour in zip(doc["appearance"]["textures"], colours, strict=True):
        Image.new("RGB", (64, 48), colour).save(folder / texture["image"], "JPEG", quality=95)
    (folder / ROTTERDAM.name).write_bytes(ROTTERDAM.read_bytes())
    engine = new_database()
    ingest_files(engine, [folder / ROTTERDAM.name], "atlas")
    client = TestClient(create_app(engine=engine))
    tileset = client.get("/collections/atlas/3dtiles/tileset.json").json()
    [uri] = [t["content"]["uri"] for t in tiles_of(tileset) if "content" in t]
    data = client.get(f"/collections/atlas/3dtiles/{uri}").content
    [(image, mime, _, uv)] = textured_primitives(data)  # one textured primitive, one image
    assert mime == "image/jpeg"
    # the file's textured ring vertices by the image they show, and the images of surfaces
    # with an area (a sliver is stored, not drawn)
    geometry = next(iter(doc["CityObjects"].values()))["geometry"][0]
    vertices = np.array(doc["vertices"], dtype=float) * doc["transform"]["scale"]
    values = next(iter(geometry["texture"].values()))["values"]
    wanted = np.zeros(len(colours), dtype=int)
    drawn = set()
    for surface, rings in zip(geometry["boundaries"], values, strict=True):
        if rings[0][0] is None:
            continue
        wanted[rings[0][0]] += len(surface[0])
        p = vertices[surface[0]]
        if np.linalg.norm(np.cross(p - p[0], np.roll(p, -1, axis=0) - p[0]).sum(axis=0)) > 1e-6:
            drawn.add(rings[0][0])
    # each vertex of the atlas primitive samples one of the six colours
    from io import BytesIO

    atlas = np.asarray(Image.open(BytesIO(image)).convert("RGB"), dtype=float)
    h, w = atlas.shape[:2]
    x = np.clip(np.floor(uv[:, 0] * w).astype(int), 0, w - 1)
    y = np.clip(np.floor(uv[:, 1] * h).astype(int), 0, h - 1)
    sampled = atlas[y, x]
    distance = np.linalg.norm(sampled[:, None, :] - np.array(colours)[None], axis=2)
    assert distance.min(axis=1).max() < 30  # every corner shows one of the images
    got = np.bincount(distance.argmin(axis=1), minlength=len(colours))
    assert set(np.flatnonzero(got).tolist()) == drawn  # every drawn image is in the atlas ...
    assert (got <= wanted).all() and got.sum() >= 0.9 * wanted.sum()  # ... at its own vertices
    (tmp_path / "atlas.glb").write_bytes(data)
    reports = validate_glbs([tmp_path / "atlas.glb"])
    assert {p: r for p, r in reports.items() if r["errors"] or r["warnings"]} == {}
    assert_served_tilesets_valid(engine, ["atlas"], tmp_path / "served")


def test_a_texture_without_coordinates_does_not_hide_the_next(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    """The Lyon house with a GeoreferencedTexture (no texture coordinates) listed first for its
    polygons: they are still drawn with the ParameterizedTexture that fits them."""
    text_ = LYON.read_text()
    targets = "".join(
        f"<app:target>{t}</app:target>"
        for t in sorted(set(__import__("re").findall(r'target uri="(#[^"]+)"', text_)))
    )
    ortho = (
        "<app:surfaceDataMember><app:GeoreferencedTexture><app:imageURI>ortho.jpg"
        f"</app:imageURI>{targets}</app:GeoreferencedTexture></app:surfaceDataMember>"
    )
    first = text_.index("<app:surfaceDataMember>")
    (tmp_path / LYON.name).write_text(text_[:first] + ortho + text_[first:])
    (tmp_path / LYON.with_suffix(".jpg").name).write_bytes(LYON.with_suffix(".jpg").read_bytes())
    engine = new_database()
    [report] = ingest_files(engine, [tmp_path / LYON.name], "geo", crs="EPSG:3946")
    assert not any("do not match their rings" in w for w in report.warnings)
    assert any("ortho.jpg" in w and "missing" in w for w in report.warnings)
    client = TestClient(create_app(engine=engine))
    tileset = client.get("/collections/geo/3dtiles/tileset.json").json()
    [uri] = [t["content"]["uri"] for t in tiles_of(tileset) if "content" in t]
    [(image, _, ecef, _)] = textured_primitives(
        client.get(f"/collections/geo/3dtiles/{uri}").content
    )
    _, rings = _gml_textured_rings(LYON)
    assert image == LYON.with_suffix(".jpg").read_bytes()
    assert len(ecef) == sum(len(xyz) - 1 for xyz, _ in rings)  # every textured vertex
    assert_served_tilesets_valid(engine, ["geo"], tmp_path / "served")


def test_large_texture_files_are_refused_unread(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import ingest.textures

    monkeypatch.setattr(ingest.textures, "MAX_BYTES", 1000)
    (tmp_path / "big.jpg").write_bytes(LYON.with_suffix(".jpg").read_bytes())
    images = TextureImages([{"image": "big.jpg"}], tmp_path)
    assert list(images) == []
    assert images.refused == ["big.jpg: 0 MB is too large for a texture"]


def test_textured_cityjson_templates_are_drawn_textured(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8), (250, 10, 10)).save(tmp_path / "sign.png")
    doc = {
        "type": "CityJSON",
        "version": "2.0",
        "transform": {"scale": [0.01, 0.01, 0.01], "translate": [1841522.0, 5175889.0, 200.0]},
        "metadata": {"referenceSystem": "https://www.opengis.net/def/crs/EPSG/0/3946"},
        "appearance": {
            "textures": [{"type": "PNG", "image": "sign.png"}],
            "vertices-texture": [[0, 0], [1, 0], [1, 1], [0, 1]],
        },
        "geometry-templates": {
            "templates": [
                {
                    "type": "MultiSurface",
                    "lod": "2",
                    "boundaries": [[[0, 1, 2, 3]]],
                    "texture": {"rgb": {"values": [[[0, 0, 1, 2, 3]]]}},
                }
            ],
            "vertices-templates": [[0, 0, 0], [2, 0, 0], [2, 0, 2], [0, 0, 2]],
        },
        "CityObjects": {
            "sign": {
                "type": "CityFurniture",
                "geometry": [
                    {
                        "type": "GeometryInstance",
                        "template": 0,
                        "boundaries": [0],
                        "transformationMatrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
                    }
                ],
            }
        },
        "vertices": [[0, 0, 0]],
    }
    (tmp_path / "sign.city.json").write_text(json.dumps(doc))
    engine = new_database()
    ingest_files(engine, [tmp_path / "sign.city.json"], "sign")
    client = TestClient(create_app(engine=engine))
    tileset = client.get("/collections/sign/3dtiles/tileset.json").json()
    [uri] = [t["content"]["uri"] for t in tiles_of(tileset) if "content" in t]
    [(image, _, ecef, uv)] = textured_primitives(
        client.get(f"/collections/sign/3dtiles/{uri}").content
    )
    assert image == (tmp_path / "sign.png").read_bytes()
    assert len(ecef) == 4
    assert sorted(map(tuple, uv.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert_served_tilesets_valid(engine, ["sign"], tmp_path / "served")
