"""The registry of input formats: how each is recognised and opened. A new format is one entry.

A PostGIS table (a `PG:` source) is not a file: it is opened by its own reader, and a PostgreSQL
dump is refused with the way to load it and ingest its table instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cim.errors import IngestError
from cim.settings import IngestSettings
from ingest import citygml, footprints, mesh, pointcloud
from ingest.cityjson import CityJsonReader, CityJsonSeqReader, sniff
from ingest.model import Reader, ReadOptions
from ingest.pgsource import DUMP_ADVICE, TableSource
from ingest.pgtable import PostGisTableReader


@dataclass(frozen=True)
class Format:
    """An input format: its name, a content sniffer and an opener."""

    name: str
    sniff: Callable[[Path, bytes], bool]
    open: Callable[[Path, IngestSettings, ReadOptions], Reader]


FORMATS: dict[str, Format] = {
    "cityjson": Format(
        "CityJSON",
        lambda p, head: sniff(p, head) == "CityJSON",
        lambda p, s, e: CityJsonReader(p),
    ),
    "cityjsonseq": Format(
        "CityJSONSeq",
        lambda p, head: sniff(p, head) == "CityJSONSeq",
        lambda p, s, e: CityJsonSeqReader(p, s.max_line_bytes),
    ),
    "citygml": Format(
        "CityGML",
        lambda p, head: citygml.sniff(head),
        lambda p, s, e: citygml.CityGmlReader(p),
    ),
    "footprints": Format(
        "footprints (GeoJSON, GeoPackage, Shapefile, FlatGeobuf)",
        footprints.sniff,
        lambda p, s, e: footprints.FootprintReader(p, e),
    ),
    "pointcloud": Format(
        "point clouds (LAS, LAZ)",
        pointcloud.sniff,
        lambda p, s, e: pointcloud.PointCloudReader(p, e),
    ),
    "mesh": Format(
        "meshes (OBJ, glTF/GLB, PLY, STL)",
        mesh.sniff,
        lambda p, s, e: mesh.MeshReader(p, e),
    ),
}


DUMP_SUFFIXES = {".sql", ".dump", ".backup", ".pgdump"}


def _is_dump(path: Path, head: bytes) -> bool:
    """A pg_dump output: plain SQL (by name or its header comment) or the custom format."""
    return (
        path.suffix.lower() in DUMP_SUFFIXES
        or head.startswith(b"PGDMP")
        or b"-- PostgreSQL database dump" in head[:4096]
    )


def open_reader(
    path: Path | TableSource,
    settings: IngestSettings,
    forced: str | None = None,
    options: ReadOptions | None = None,
) -> Reader:
    """Open `path` with the reader its content calls for (or `forced`, a key of FORMATS).

    Raises:
        IngestError: missing, empty or unrecognised file; a PostgreSQL dump; a table that cannot
            be read.
    """
    if isinstance(path, TableSource):
        return PostGisTableReader(path, options)
    if not path.exists():
        raise IngestError(path, "no such file")
    if not path.is_file():
        raise IngestError(path, "not a regular file")
    if forced is not None:
        if forced not in FORMATS:
            raise IngestError(path, f"unknown format {forced!r} (known: {', '.join(FORMATS)})")
        return FORMATS[forced].open(path, settings, options or ReadOptions())
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if _is_dump(path, head):
        raise IngestError(path, DUMP_ADVICE)
    if not head.strip():
        raise IngestError(path, "the file is empty")
    for fmt in FORMATS.values():
        if fmt.sniff(path, head):
            return fmt.open(path, settings, options or ReadOptions())
    raise IngestError(
        path,
        "unrecognised format: expected CityJSON (.city.json), CityJSONSeq (.jsonl), CityGML "
        "1.0-3.0 (.gml), footprints (GeoJSON, GeoPackage, Shapefile, FlatGeobuf), a mesh "
        "(.obj, .glb, .gltf, .ply, .stl) or a point cloud (.las, .laz)",
    )
