"""Meshes (OBJ, glTF/GLB, PLY, STL, read with trimesh) placed on the Earth.

A mesh has no CRS of its own, so the caller says where it is: `--crs` with an optional
`--offset x,y,z` (the mesh's coordinates plus the offset are coordinates in that CRS), or
`--origin lon,lat,height` (the mesh's axes are east, north, up in metres from that point; the
conversion is exact, through Earth-centred coordinates). glTF is Y-up by its specification and is
turned Z-up; other formats are taken Z-up unless `--up y` says otherwise.

Each node of the scene that holds geometry becomes one city object (a whole OBJ file is one),
named after the node, its primitives together one geometry of triangles. Material base colours
become the objects' colours; textured primitives keep their texture coordinates and images, which
the 3D Tiles draw.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pyproj import Transformer

from cim.crs import lonlath_to_ecef
from cim.errors import IngestError
from cim.images import MAX_PIXELS
from ingest.model import ReadOptions, SourceGeometry, SourceObject

SUFFIXES = {".obj", ".glb", ".gltf", ".ply", ".stl"}
Y_UP = {".glb", ".gltf"}
_TO_LLH = Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def sniff(path: Path, head: bytes) -> bool:
    """A mesh by its suffix (OBJ, PLY and STL have no reliable signature) or glTF's magic."""
    return head.startswith(b"glTF") or path.suffix.lower() in SUFFIXES


def _enu_to_lonlath(enu: NDArray[np.float64], origin: tuple[float, float, float]) -> Any:
    """East, north, up metres from `origin` (lon, lat, h) to longitude, latitude, height."""
    lon, lat = np.radians(origin[0]), np.radians(origin[1])
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    base = lonlath_to_ecef(np.array([origin], dtype=np.float64))[0]
    ecef = base + enu[:, :1] * east + enu[:, 1:2] * north + enu[:, 2:3] * up
    x, y, z = _TO_LLH.transform(ecef[:, 0], ecef[:, 1], ecef[:, 2])
    return np.column_stack((x, y, z))


class MeshReader:
    """A mesh file or scene; its nodes become city objects."""

    format = "Mesh"
    axis_order = "xy"

    def __init__(self, path: Path, options: ReadOptions | None = None) -> None:
        import trimesh

        self.path = str(path)
        self._path = path
        self.options = options or ReadOptions()
        suffix = path.suffix.lower()
        try:
            with _dropped_images() as dropped:
                scene = trimesh.load(str(path), force="scene", process=False)
        except Exception as exc:  # trimesh raises many kinds on a broken file
            raise IngestError(path, f"not a readable mesh ({type(exc).__name__}: {exc})") from None
        self.scene: Any = cast(Any, scene)  # a Scene (force="scene"); trimesh's types are loose
        if not self.scene.geometry:
            raise IngestError(path, "the mesh has no geometry")
        if not any(len(getattr(g, "faces", ())) for g in self.scene.geometry.values()):
            raise IngestError(
                path, "the mesh has no triangles (points or lines only): nothing to place"
            )
        self.format_version: str | None = suffix.lstrip(".").upper()
        self.up = (self.options.up or ("y" if suffix in Y_UP else "z")).lower()
        if self.up not in ("y", "z"):
            raise IngestError(path, f"--up must be y or z, not {self.options.up!r}")
        o = self.options
        if o.origin is not None and o.offset is not None:
            raise IngestError(path, "give --origin or --offset, not both")
        # with --origin the reader writes longitude, latitude, height itself
        self.crs_name: str | None = "EPSG:4979" if o.origin is not None else None
        self.warnings: list[str] = [
            f"texture image {problem}: its surfaces are drawn without texture"
            for problem in dropped.problems[:10]
        ]
        if len(dropped.problems) > 10:
            self.warnings.append(f"... and {len(dropped.problems) - 10} more texture images")
        self.metadata: dict[str, Any] = {
            "up": self.up,
            "origin": list(o.origin) if o.origin else None,
            "offset": list(o.offset) if o.offset else None,
        }
        self._groups = self._group_nodes()
        self.total_objects: int | None = len(self._groups)
        self.appearance: dict[str, Any] = self._appearance()

    def _group_nodes(self) -> dict[str, list[str]]:
        """Geometry nodes by the scene node that owns them (trimesh splits a glTF mesh's
        primitives into child nodes of the glTF node)."""
        graph = self.scene.graph
        parents = graph.transforms.parents  # child node -> parent node
        groups: dict[str, list[str]] = {}
        for node in graph.nodes_geometry:
            parent = parents.get(node)
            owner = parent if parent is not None and parent != graph.base_frame else node
            groups.setdefault(str(owner), []).append(node)
        return groups

    def _appearance(self) -> dict[str, Any]:
        """Materials (base colours) and texture images: `images` holds the decoded image of
        each texture, by its index in the texture list (one entry per distinct image)."""
        materials: list[dict[str, Any]] = []
        textures: list[dict[str, Any]] = []
        self.images: dict[int, Any] = {}
        self._material_of: dict[str, int] = {}
        self._texture_of: dict[str, int] = {}
        seen: dict[int, int] = {}  # id(image) -> texture index
        for name, geom in self.scene.geometry.items():
            material = getattr(geom.visual, "material", None)
            if material is None:
                continue
            colour = getattr(material, "baseColorFactor", None)
            if colour is None:
                colour = getattr(material, "main_color", None)
            entry: dict[str, Any] = {"name": str(getattr(material, "name", None) or name)}
            if colour is not None:
                rgba = np.asarray(colour, dtype=np.float64).ravel()
                scale = 255.0 if rgba.max() > 1.0 else 1.0
                entry["diffuseColor"] = [round(float(v) / scale, 4) for v in rgba[:3]]
            image = getattr(material, "baseColorTexture", None) or getattr(material, "image", None)
            if image is not None:
                if id(image) not in seen:
                    seen[id(image)] = len(textures)
                    self.images[len(textures)] = image
                    textures.append({"material": entry["name"], "size": list(image.size)})
                self._texture_of[name] = seen[id(image)]
            self._material_of[name] = len(materials)
            materials.append(entry)
        out: dict[str, Any] = {}
        if materials:
            out["materials"] = materials
        if textures:
            out["textures"] = textures
        return out

    def objects(self) -> Iterator[SourceObject]:
        """One city object per scene node that holds geometry, its primitives as one geometry
        (3D views draw one geometry per object) with a material per triangle."""
        graph = self.scene.graph
        for owner, nodes in self._groups.items():
            corners: list[NDArray[np.float64]] = []
            uvs: list[NDArray[np.float64]] = []
            textures: list[int] = []
            materials: list[int | None] = []
            primitives = []
            for node in nodes:
                matrix, name = graph.get(node)
                geom = self.scene.geometry[name]
                faces = np.asarray(getattr(geom, "faces", np.zeros((0, 3))), dtype=np.int64)
                if faces.size == 0:
                    continue
                vertices = np.asarray(geom.vertices, dtype=np.float64)
                if faces.min() < 0 or faces.max() >= len(vertices):
                    raise IngestError(
                        self._path,
                        f"a face refers to vertex {int(faces.max())} of {len(vertices)}",
                        owner,
                    )
                vertices = vertices @ matrix[:3, :3].T + matrix[:3, 3]
                corners.append(self._placed(vertices)[faces.ravel()])
                uv = getattr(geom.visual, "uv", None)
                texture = self._texture_of.get(name, -1)
                if texture >= 0 and uv is not None and len(uv) == len(vertices):
                    uvs.append(np.asarray(uv, dtype=np.float64)[faces.ravel(), :2])
                else:
                    uvs.append(np.full((faces.size, 2), np.nan))
                    texture = -1
                textures += [texture] * len(faces)
                materials += [self._material_of.get(name)] * len(faces)
                primitives.append({"name": name, "triangles": len(faces)})
            yield SourceObject(
                id=owner if owner != "world" else Path(self.path).stem,
                type=self.options.object_type,
                attributes={"name": owner, "source_file": Path(self.path).name},
                parents=[],
                children=[],
                geometries=[_triangles(corners, materials, primitives, uvs, textures)]
                if corners
                else [],
            )

    def _placed(self, vertices: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.up == "y":
            vertices = np.column_stack((vertices[:, 0], -vertices[:, 2], vertices[:, 1]))
        if self.options.offset is not None:
            vertices = vertices + np.asarray(self.options.offset, dtype=np.float64)
        if self.options.origin is not None:
            vertices = _enu_to_lonlath(vertices, self.options.origin)
        return vertices

    def close(self) -> None:
        """Nothing to release: trimesh read the file whole."""


class _DroppedImages(logging.Handler):
    """What trimesh says (at debug level) when it goes on without an image it cannot open: too
    many pixels for Pillow's guard, a broken or missing image. The texture would then just be
    missing; kept here for the ingest report, so that nothing is lost silently."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if "image" not in text.lower() and "texture" not in text.lower():
            return
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, Image.DecompressionBombError):
            pixels = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow's message gives them
            size = f"{int(pixels[1]):,} pixels, " if pixels else ""
            self.problems.append(
                f"not opened: too many pixels for a texture ({size}limit {MAX_PIXELS:,})"
            )
        elif exc is not None:
            self.problems.append(f"not opened ({type(exc).__name__}: {exc})")
        else:
            self.problems.append(f"not opened ({text})")


@contextmanager
def _dropped_images() -> Iterator[_DroppedImages]:
    """Listen to trimesh's log while it loads a file. Pillow's warning about an image above
    MAX_PIXELS is not shown: the images are held to that limit before they are decoded."""
    log = logging.getLogger("trimesh")
    handler, level = _DroppedImages(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield handler
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


def _triangles(
    corners: list[NDArray[np.float64]],
    materials: list[int | None],
    primitives: list[dict[str, Any]],
    uvs: list[NDArray[np.float64]],
    textures: list[int],
) -> SourceGeometry:
    vertices = np.vstack(corners)
    n = len(vertices) // 3
    structure: dict[str, Any] = {"type": "MultiSurface", "source": "mesh", "primitives": primitives}
    if any(m is not None for m in materials):
        structure["material"] = {"mesh": {"values": materials}}
    textured = any(t >= 0 for t in textures)
    if textured:
        structure["texture"] = {"mesh": {"values": textures}}
    return SourceGeometry(
        type="MultiSurface",
        lod=None,
        kind="surface",
        vertices=vertices,
        indices=range(len(vertices)),
        ring_sizes=[3] * n,
        polygon_rings=[1] * n,
        structure=structure,
        uvs=np.vstack(uvs) if textured else None,
        polygon_textures=textures if textured else None,
    )
