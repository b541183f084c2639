"""Ingest: files -> readers -> prepared rows -> PostGIS, one transaction for the whole run."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from cim.bulk import fewer_collections
from cim.crs import ToStorage, crs_label, gml_axes_swapped, parse_crs
from cim.errors import DatabaseUnavailable, IngestError, InvalidCRS
from cim.geometry import EARCUT_FALLBACK_VERTICES
from cim.settings import IngestSettings
from ingest.datasets import ensure_city, finish_dataset, replace_dataset, scheme_city
from ingest.formats import open_reader
from ingest.model import Reader, ReadOptions, SourceObject
from ingest.pgsource import TableSource
from ingest.prepare import prepare_batch
from ingest.textures import TextureImages
from ingest.writer import DatasetWriter, IdSource

Progress = Callable[[int, int | None], None]
"""Called after each batch with the objects just written and the file's total when known."""


@dataclass
class IngestReport:
    """What one file's ingest did, for the CLI's summary and `--json`."""

    dataset_id: int
    dataset: str
    city: str
    path: str
    format: str
    format_version: str | None
    source_crs: str
    object_count: int
    counts_by_type: dict[str, int]
    counts_by_lod: dict[str, int]
    warnings: list[str] = field(default_factory=list)
    replaced: bool = False
    seconds: float = 0.0
    # how coordinates were placed: {"horizontal": PROJ's operation, its grids, accuracy and
    # whether it is a zero-shift "ballpark"; "heights": the method (national grid, global EGM96
    # geoid, none needed, assumed ellipsoidal or not converted), model and expected accuracy}
    transformation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return asdict(self)


def file_checksum(path: Path) -> str:
    """SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class _Checksum(threading.Thread):
    """A file's SHA-256, taken in a thread while the file is read and written (hashlib and file
    reads release the GIL: half a second of a 360 MB point cloud's ingest overlapped)."""

    def __init__(self, path: Path) -> None:
        super().__init__(name="cim-checksum", daemon=True)
        self.path = path
        self._digest: str | None = None
        self._error: OSError | None = None
        self.start()

    def run(self) -> None:
        try:
            self._digest = file_checksum(self.path)
        except OSError as exc:  # raised by result(), in the ingest's thread
            self._error = exc

    def result(self) -> str:
        """The hex digest, once the thread is done.

        Raises:
            OSError: the file could not be read.
        """
        self.join()
        if self._error is not None:
            raise self._error
        assert self._digest is not None
        return self._digest


MAX_BATCH_VERTICES = 1_000_000  # a batch of big objects stays this small
# a point with its source record (a LAS point) counts 4 vertices: a batch holds 250,000 of them.
# The database writes a point cloud's rows more slowly than they are made, so it is what the
# ingest waits for, and it sits idle until the first batch is made: a quarter of the batch, a
# quarter of that wait (a 10 M point ingest took 0.5 s less, and 200 MB less memory)
RECORD_VERTICES = 4


def _batches(objects: Iterable[SourceObject], size: int) -> Iterable[list[SourceObject]]:
    batch: list[SourceObject] = []
    vertices = 0
    for obj in objects:
        batch.append(obj)
        for g in obj.geometries:  # referenced, not shared
            vertices += len(g.indices) * (1 if g.point_data is None else RECORD_VERTICES)
        if len(batch) >= size or vertices >= MAX_BATCH_VERTICES:
            yield batch
            batch = []
            vertices = 0
    if batch:
        yield batch


def _dangling_warnings(writer: DatasetWriter, city: str, dataset_id: int) -> list[str]:
    row = writer.conn.execute(
        "SELECT count(*) FROM city_object o, unnest(o.children || o.parents) AS ref"
        " WHERE o.city_code = %s AND o.dataset_id = %s AND NOT EXISTS"
        " (SELECT 1 FROM city_object r WHERE r.city_code = o.city_code AND r.source_id = ref)",
        (city, dataset_id),
    ).fetchone()
    n = int(row[0]) if row else 0
    return [f"{n} parent/children references name objects that are not in the city"] if n else []


def _source_crs(
    reader: Reader, crs: str | None, path: Path, warnings: list[str], axis_order: str | None = None
) -> tuple[ToStorage, str]:
    """The transformation to storage for the file's CRS, or `--crs` (which wins, with a warning
    when the file says otherwise).

    Raises:
        IngestError: no CRS at all, or one that is unknown or unusable.
    """
    if crs and reader.crs_name:
        try:
            same = parse_crs(crs) == parse_crs(reader.crs_name)
        except InvalidCRS:
            same = False
        if not same:
            warnings.append(f"--crs {crs} overrides the file's CRS {reader.crs_name}")
    name = crs or reader.crs_name
    if not name:
        raise IngestError(
            path,
            "the file declares no CRS (CityJSON metadata.referenceSystem, GML srsName): "
            "pass one with --crs, e.g. --crs EPSG:7415 (a mesh: --origin lon,lat,height, or "
            "--crs with --offset)",
        )
    try:
        source = parse_crs(name)
        swap: bool | None = False
        if getattr(reader, "axis_order", "xy") == "crs":
            if axis_order is not None:
                swap = axis_order == "north-first"
            elif gml_axes_swapped(name, source):
                swap = None  # a northing-first CRS: the order the file uses is decided on its data
        return ToStorage(source, swap_xy=swap, where=str(path)), crs_label(source)
    except InvalidCRS as exc:
        raise IngestError(path, str(exc)) from None


def _ingest_one(
    writer: DatasetWriter,
    ids: IdSource,
    path: Path | TableSource,
    city: str,
    name: str,
    crs: str | None,
    settings: IngestSettings,
    city_names: tuple[str | None, str | None],
    forced_format: str | None,
    progress: Progress | None,
    options: ReadOptions | None = None,
    scheme: tuple[str, str, str | None] | None = None,
) -> IngestReport:
    started = time.perf_counter()
    reader = open_reader(path, settings, forced_format, options)
    try:
        checksum: _Checksum | str
        if isinstance(path, TableSource):  # no file: the reader's fingerprint of the table's rows
            checksum, source_path, folder = str(getattr(reader, "checksum", "")), str(path), Path()
        else:  # written when the objects are: the dataset row is made first, with none yet
            checksum, source_path, folder = _Checksum(path), str(path.resolve()), path.parent
        warnings = list(reader.warnings)
        to_storage, label = _source_crs(  # a table's label (no password) in a Path: only printed
            reader, crs, Path(str(path)), warnings, options.axis_order if options else None
        )
        warnings += to_storage.warnings
        if scheme is not None:  # drawn in its city's CRS, or it would not sit on the city
            _same_crs(Path(str(path)), label, scheme[0], scheme[2])
        ensure_city(writer.conn, city, label, *city_names, scheme_of=scheme[:2] if scheme else None)
        fields = {
            "source_path": source_path,
            "format": reader.format,
            "format_version": reader.format_version,
            "source_crs": label,
            "checksum": checksum if isinstance(checksum, str) else "",
            "appearance": reader.appearance,
            "metadata": reader.metadata,
        }
        dataset_id, replaced = replace_dataset(writer.conn, city, name, fields)
        materials = reader.appearance.get("materials")  # the reader's own list: it may grow
        if not isinstance(materials, list):
            materials = []
        by_type: Counter[str] = Counter()
        by_lod: Counter[str] = Counter()
        keys: set[str] = set()
        drawn: set[int] = set()  # textures some polygon shows
        degenerate = 0
        for batch in _batches(reader.objects(), settings.batch_size):
            prepared = prepare_batch(
                str(path),
                city,
                dataset_id,
                ids.take(len(batch)),
                batch,
                to_storage,
                label,
                settings.max_abs_coordinate,
                materials,
            )
            writer.write(prepared)
            by_type.update(prepared.stats.by_type)
            by_lod.update(prepared.stats.by_lod)
            keys |= prepared.stats.attribute_keys
            drawn |= prepared.stats.textures
            degenerate += prepared.stats.degenerate_surfaces
            if progress:
                progress(len(batch), reader.total_objects)
        total = sum(by_type.values())
        if degenerate:
            warnings.append(
                f"{degenerate} surfaces have no area (or over {EARCUT_FALLBACK_VERTICES:,} "
                "vertices and rings that cross or touch) and were stored but not triangulated "
                "(they will not show in 3D views)"
            )
        writer.flush()
        # the texture images the file names, stored beside its objects (or reported)
        textures = reader.appearance.get("textures") if reader.appearance else None
        images = TextureImages(
            textures if isinstance(textures, list) else [],
            folder,
            getattr(reader, "images", {}),  # images inside the file (meshes)
            drawn,
        )
        writer.store_textures(city, dataset_id, images)
        late = reader.warnings + to_storage.warnings + images.report()  # found while reading
        warnings += [w for w in late if w not in warnings]
        warnings += _dangling_warnings(writer, city, dataset_id)
        writer.flush()
        finish_dataset(
            writer.conn,
            city,
            dataset_id,
            {
                "object_count": total,
                "counts": {"by_type": by_type, "by_lod": by_lod},
                "warnings": warnings,
                "attribute_keys": keys,
                "appearance": reader.appearance,
                "metadata": reader.metadata,
                "checksum": checksum if isinstance(checksum, str) else checksum.result(),
            },
        )
    finally:
        reader.close()
    return IngestReport(
        dataset_id,
        name,
        city,
        str(path),
        reader.format,
        reader.format_version,
        label,
        total,
        dict(by_type),
        dict(by_lod),
        warnings,
        replaced,
        round(time.perf_counter() - started, 3),
        to_storage.describe(),
    )


def _same_crs(path: Path, label: str, city: str, city_crs: str | None) -> None:
    """Refuse a design scheme in another CRS than its city's."""
    if city_crs is None:
        return
    try:
        same = parse_crs(label) == parse_crs(city_crs)
    except InvalidCRS:
        same = False
    if not same:
        raise IngestError(
            path,
            f"the scheme is in {label} and city {city} in {city_crs}: a design scheme is drawn "
            f"in its city's CRS (convert it to {city_crs}, or give --crs if the file's is wrong)",
        )


def ingest_files(
    engine: Engine,
    paths: Sequence[Path | TableSource],
    city: str,
    crs: str | None = None,
    name: str | None = None,
    city_name_zh: str | None = None,
    city_name_en: str | None = None,
    forced_format: str | None = None,
    settings: IngestSettings | None = None,
    progress: Progress | None = None,
    options: ReadOptions | None = None,
    scenario: str | None = None,
) -> list[IngestReport]:
    """Ingest files (and PostGIS tables) into a city as one transaction: all land, or nothing does.
    With `scenario`, they are a design scheme of the city (held as city `{city}~{scenario}`),
    which must exist and whose CRS they must be in; the city itself does not change.

    Raises:
        IngestError: a file cannot be ingested; the message names the file and the object.
    """
    settings = settings or IngestSettings()
    if not city or len(city) > 64 or not city.replace("-", "").replace("_", "").isalnum():
        raise IngestError(
            city, "a city code is letters, digits, '-' or '_' (at most 64), e.g. 370100"
        )
    if name and len(paths) > 1:
        raise IngestError(name, "--name names one dataset; give one file with it")
    raw = engine.raw_connection()
    raw_ids = engine.raw_connection()
    # an ingest allocates millions of short-lived objects and makes few cycles (cim.bulk)
    with fewer_collections():
        try:
            pg: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
            id_conn: psycopg.Connection[Any] = raw_ids.driver_connection  # type: ignore[assignment]
            id_conn.autocommit = True
            ids = IdSource(id_conn)
            writer_reports = []
            writer: DatasetWriter | None = None
            path = paths[0]
            try:
                scheme = None
                if scenario is not None:
                    code, city_crs = scheme_city(pg, city, scenario)
                    scheme, city = (city, scenario, city_crs), code
                for path in paths:
                    writer = DatasetWriter(pg, str(path))
                    writer_reports.append(
                        _ingest_one(
                            writer,
                            ids,
                            path,
                            city,
                            name or path.name,
                            crs,
                            settings,
                            (city_name_zh, city_name_en),
                            forced_format,
                            progress,
                            options,
                            scheme,
                        )
                    )
                pg.commit()
            except BaseException as exc:
                if writer is not None:
                    writer.abandon()
                pg.rollback()
                if isinstance(exc, RecursionError):
                    raise IngestError(path, "data nested too deeply to be a city model") from None
                if isinstance(exc, psycopg.OperationalError):
                    raise DatabaseUnavailable(f"the database connection failed: {exc}") from None
                if isinstance(exc, OSError):
                    problem = f"cannot read the file: {exc.strerror or exc}"
                    raise IngestError(path, problem) from None
                raise
            # fresh statistics at once, so that the first queries over a city just loaded (its
            # indicators, its tiles) are planned for its size, not for the tables as they were
            # before; autovacuum would come to it later. A sample of 30,000 rows per table. The
            # geometry table is only ever joined by its key: statistics of its key columns (and
            # its row count) are all its plans use, and those of its geometry, meshes and points
            # took three quarters of the time (PostGIS reads each sampled geometry whole: 1.2 s
            # against 0.36 s beside a city of a million buildings; a fifth of a 10 M-point ingest)
            with pg.cursor() as cur:
                cur.execute(
                    "ANALYZE city_object, object_geometry (city_code, object_id, idx, lod, type),"
                    " dataset"
                )
            pg.commit()
            return writer_reports
        finally:
            id_conn.autocommit = False
            raw_ids.close()
            raw.close()
