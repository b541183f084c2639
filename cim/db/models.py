"""The city-model schema; every table has `city_code` in its primary key (the shard key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cim.crs import FOOTPRINT_EPSG, STORAGE_EPSG


class Base(DeclarativeBase):
    """Declarative base of the CIM schema."""


# The one module that writes each table; every other module reads it or calls that module
# (tests/db/test_owners.py checks the code against this). Migrations write too, and triggers:
# `audit_log` refuses edits, and a dataset's deletion or completion empties its tiles from
# `tile_cache` (migration 0007).
WRITERS = {
    "city": "ingest.datasets",
    "dataset": "ingest.datasets",
    "city_object": "ingest.writer",
    "object_geometry": "ingest.writer",
    "texture_image": "ingest.writer",
    "tile_cache": "tiles.service",
    "tile_property_stats": "tiles.schema",
    "grading_round": "grading.rounds",
    "grading_city": "grading.rounds",
    "grading_value": "grading.values",
    "grading_choice": "grading.values",
    "grading_exemption": "grading.exemptions",
    "grading_evidence": "grading.evidence",
    "grading_area": "grading.areas",
    "grading_platform_function": "grading.platform",
    "grading_job": "grading.jobs",
    "api_key": "grading.access",
    "audit_log": "grading.access",
    "twin_thing": "twin.store",
    "twin_location": "twin.store",
    "twin_thing_location": "twin.store",
    "twin_historical_location": "twin.store",
    "twin_historical_location_location": "twin.store",
    "twin_sensor": "twin.store",
    "twin_observed_property": "twin.store",
    "twin_datastream": "twin.store",
    "twin_feature": "twin.store",
    "twin_observation": "twin.observations",
    "twin_latest": "twin.observations",
    "twin_key": "twin.access",
    "planning_parcel": "ingest.parcels",
    "analysis_run": "analysis.runs",
}


class City(Base):
    """A city (or any area) whose model CIM holds; `code` is e.g. the administrative code 370100."""

    __tablename__ = "city"
    __table_args__ = (
        CheckConstraint("(base_city IS NULL) = (scenario IS NULL)", name="city_scenario"),
        Index(
            "city_scenario_ix",
            "base_city",
            "scenario",
            unique=True,
            postgresql_where=text("base_city IS NOT NULL"),
        ),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str | None] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    crs: Mapped[str | None] = mapped_column(Text, comment="Native CRS of its data, e.g. EPSG:4548")
    created_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # a design scheme is a scenario of a city, held as a city `{city}~{scenario}` (0019)
    base_city: Mapped[str | None] = mapped_column(
        String(64),
        ForeignKey("city.code", ondelete="CASCADE"),
        comment="the city this is a design scheme for (NULL: a city)",
    )
    scenario: Mapped[str | None] = mapped_column(Text, comment="the scheme's name, e.g. scheme-a")


class Dataset(Base):
    """One ingested source file; re-ingesting a file with the same name replaces it whole."""

    __tablename__ = "dataset"
    __table_args__ = (
        ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="CASCADE"),
        UniqueConstraint("city_code", "name"),
    )

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    source_path: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(Text)
    format_version: Mapped[str | None] = mapped_column(Text)
    source_crs: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str] = mapped_column(String(64), comment="SHA-256 of the source file")
    object_count: Mapped[int] = mapped_column(Integer)
    counts: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="by type and by LoD")
    warnings: Mapped[list[str]] = mapped_column(JSONB)
    appearance: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="materials, textures")
    file_metadata: Mapped[dict[str, Any]] = mapped_column(JSONB)
    attribute_keys: Mapped[list[str]] = mapped_column(ARRAY(Text))
    status: Mapped[str] = mapped_column(Text, server_default="ready")
    imported_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CityObject(Base):
    """A city object (Building, Road, ...) with its attributes; its geometries are rows below."""

    __tablename__ = "city_object"
    __table_args__ = (
        ForeignKeyConstraint(
            ["city_code", "dataset_id"], ["dataset.city_code", "dataset.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("city_code", "source_id"),
        Index("city_object_bbox_gix", "bbox", postgresql_using="gist"),
        Index("city_object_type_ix", "city_code", "type"),
        Index("city_object_dataset_ix", "city_code", "dataset_id"),
        Index("city_object_tile_ix", "city_code", "tile_level", "tile_x", "tile_y"),
    )

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    parents: Mapped[list[str]] = mapped_column(ARRAY(Text))
    children: Mapped[list[str]] = mapped_column(ARRAY(Text))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="other members")
    lods: Mapped[list[str]] = mapped_column(ARRAY(Text))
    footprint = mapped_column(
        Geometry("GEOMETRY", srid=FOOTPRINT_EPSG, spatial_index=False), nullable=True
    )
    bbox = mapped_column(
        Geometry("POLYGON", srid=FOOTPRINT_EPSG, spatial_index=False), nullable=True
    )
    z_min: Mapped[float | None] = mapped_column(Float, comment="ellipsoidal metres")
    z_max: Mapped[float | None] = mapped_column(Float)
    tile_level: Mapped[int | None] = mapped_column(SmallInteger)
    tile_x: Mapped[int | None] = mapped_column(Integer)
    tile_y: Mapped[int | None] = mapped_column(Integer)
    size: Mapped[float | None] = mapped_column(Float, comment="largest extent, metres")
    display_idx: Mapped[int | None] = mapped_column(
        SmallInteger, comment="the geometry 3D views draw"
    )
    mesh_weight: Mapped[int | None] = mapped_column(
        BigInteger, comment="estimated tile content bytes of the mesh it draws (cim.tiling)"
    )
    plain_weight: Mapped[int | None] = mapped_column(
        BigInteger, comment="estimated tile content bytes of the points or lines it draws"
    )


class ObjectGeometry(Base):
    """One geometry (one LoD) of a city object: PostGIS 3D geometry plus its triangulated mesh.

    `geom` holds one polygon per surface in boundary order; `structure` keeps the nesting (shells,
    solids), semantics, materials and textures so that the source geometry can be rebuilt.
    The mesh is float32 Earth-centred positions relative to `origin_*`, uint32 triangles and, per
    triangle, the index of the surface it came from.
    """

    __tablename__ = "object_geometry"
    __table_args__ = (
        ForeignKeyConstraint(
            ["city_code", "object_id"],
            ["city_object.city_code", "city_object.id"],
            ondelete="CASCADE",
        ),
    )

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    object_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    lod: Mapped[str | None] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    geom = mapped_column(Geometry("GEOMETRYZ", srid=STORAGE_EPSG, spatial_index=False))
    structure: Mapped[dict[str, Any]] = mapped_column(JSONB)
    origin_x: Mapped[float | None] = mapped_column(Float)
    origin_y: Mapped[float | None] = mapped_column(Float)
    origin_z: Mapped[float | None] = mapped_column(Float)
    mesh_vertices: Mapped[bytes | None] = mapped_column(LargeBinary)
    mesh_triangles: Mapped[bytes | None] = mapped_column(LargeBinary)
    mesh_surfaces: Mapped[bytes | None] = mapped_column(LargeBinary)
    mesh_colours: Mapped[bytes | None] = mapped_column(LargeBinary, comment="RGB per triangle")
    point_data: Mapped[bytes | None] = mapped_column(
        LargeBinary,
        comment="per point, the source record packed; its layout is structure.point_data",
    )
    mesh_uvs: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="float32 (u, v) per mesh vertex"
    )
    mesh_textures: Mapped[bytes | None] = mapped_column(
        LargeBinary, comment="int32 per triangle: the dataset's texture index, -1 for none"
    )


class TextureImage(Base):
    """A texture image of a dataset, as JPEG or PNG, stored so that tiles need no source file."""

    __tablename__ = "texture_image"
    __table_args__ = (
        ForeignKeyConstraint(
            ["city_code", "dataset_id"], ["dataset.city_code", "dataset.id"], ondelete="CASCADE"
        ),
    )

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    idx: Mapped[int] = mapped_column(
        Integer, primary_key=True, comment="index in dataset.appearance"
    )
    source: Mapped[str] = mapped_column(Text, comment="the image as the file names it")
    mime: Mapped[str] = mapped_column(Text, comment="image/jpeg or image/png")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), comment="of the stored bytes")
    data: Mapped[bytes] = mapped_column(LargeBinary)


class TileCache(Base):
    """A 3D Tiles content made on first request; dropped when a dataset touching it changes."""

    __tablename__ = "tile_cache"
    __table_args__ = (ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="CASCADE"),)

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    tile_level: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    tile_x: Mapped[int] = mapped_column(Integer, primary_key=True)
    tile_y: Mapped[int] = mapped_column(Integer, primary_key=True)
    format: Mapped[str] = mapped_column(Text, primary_key=True, comment="glb or b3dm")
    variant: Mapped[str] = mapped_column(
        Text,
        primary_key=True,
        server_default="",
        comment="digest of the settings that change the content's bytes",
    )
    made_with: Mapped[str] = mapped_column(
        Text,
        server_default="",
        comment="digest of the code and the city's property schema that made it",
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)
    etag: Mapped[str] = mapped_column(Text)
    made_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class TilePropertyStats(Base):
    """What a dataset's objects hold in their attributes, measured once for its city's schema
    of tile properties (no key to `dataset`: measuring must not wait for a deletion's lock)."""

    __tablename__ = "tile_property_stats"
    __table_args__ = (ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="CASCADE"),)

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stats: Mapped[dict[str, Any]] = mapped_column(
        JSONB, comment="objects, and each attribute's kinds"
    )
    made_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


# ---------------------------------------------------------------- grading
class GradingRound(Base):
    """An assessment round: a year, a frozen copy of the catalogue and of the award policy."""

    __tablename__ = "grading_round"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    year: Mapped[int] = mapped_column(Integer)
    catalogue: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default="draft")
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    results: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="frozen when final")
    results_sha256: Mapped[str | None] = mapped_column(String(64))
    previous_round_id: Mapped[str | None] = mapped_column(
        String(64),
        ForeignKey("grading_round.id"),
        comment="the round this one is compared with, linked by the committee",
    )


class GradingCity(Base):
    """A city taking part in a round, with its result of the previous round (for step-ups)."""

    __tablename__ = "grading_city"
    __table_args__ = (ForeignKeyConstraint(["round_id"], ["grading_round.id"], ondelete="CASCADE"),)

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    previous_stars: Mapped[int | None] = mapped_column(SmallInteger)
    previous_total: Mapped[float | None] = mapped_column(Float)


class GradingEvidence(Base):
    """An uploaded evidence file, stored once per round under its SHA-256."""

    __tablename__ = "grading_evidence"
    __table_args__ = (ForeignKeyConstraint(["round_id"], ["grading_round.id"], ondelete="CASCADE"),)

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(Text)
    uploaded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class GradingArea(Base):
    """The area a city's area-based model indicators are computed over (its administrative or
    built-up boundary), from a file the committee supplies, kept as evidence under its SHA-256."""

    __tablename__ = "grading_area"
    __table_args__ = (
        ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["round_id", "evidence_sha256"],
            ["grading_evidence.round_id", "grading_evidence.sha256"],
        ),
        CheckConstraint("kind IN ('administrative', 'built_up')", name="grading_area_kind"),
    )

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(Text, comment="administrative or built_up")
    name: Mapped[str] = mapped_column(Text, server_default="")
    geom: Mapped[Any] = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False))
    area_km2: Mapped[float] = mapped_column(Float, comment="on the WGS 84 ellipsoid")
    source_crs: Mapped[str] = mapped_column(Text, comment="the file's CRS")
    features: Mapped[int] = mapped_column(Integer)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    declared_by: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class GradingPlatformFunction(Base):
    """A function group of a city-level CIM platform (CJJ/T 315-2022 §4.3.2) that the city's
    platform offers, with its evidence."""

    __tablename__ = "grading_platform_function"
    __table_args__ = (
        ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["round_id", "evidence_sha256"],
            ["grading_evidence.round_id", "grading_evidence.sha256"],
        ),
    )

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    function_group: Mapped[str] = mapped_column(Text, primary_key=True)
    evidence_sha256: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, server_default="")
    declared_by: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class GradingValue(Base):
    """One indicator value of one city in a round, with where it comes from: the value the city
    reported, and apart from it the value computed from the city model (one never overwrites
    the other; `grading_choice` says which counts when both are there)."""

    __tablename__ = "grading_value"
    __table_args__ = (
        ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["round_id", "evidence_sha256"],
            ["grading_evidence.round_id", "grading_evidence.sha256"],
        ),
        CheckConstraint("kind IN ('reported', 'computed')", name="grading_value_kind"),
    )

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    indicator_id: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(
        Text, primary_key=True, server_default="reported", comment="reported or computed"
    )
    value: Mapped[Any] = mapped_column(JSONB, nullable=True)
    unit: Mapped[str] = mapped_column(Text, server_default="")
    source: Mapped[str] = mapped_column(Text, server_default="")
    link: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))
    computed: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB, comment="the query and parameters of a CIM-computed value"
    )
    entered_by: Mapped[str] = mapped_column(Text)
    entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GradingChoice(Base):
    """Which of a city's two values of an indicator counts (reported or computed), chosen by the
    committee with its reason."""

    __tablename__ = "grading_choice"
    __table_args__ = (
        ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        CheckConstraint("counts IN ('reported', 'computed')", name="grading_choice_counts"),
    )

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    indicator_id: Mapped[str] = mapped_column(Text, primary_key=True)
    counts: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    chosen_by: Mapped[str] = mapped_column(Text)
    chosen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GradingExemption(Base):
    """Why a required value of a city (or all of a city's values: indicator "") may be missing
    when the round is submitted or made final, recorded by the committee."""

    __tablename__ = "grading_exemption"
    __table_args__ = (
        ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
    )

    round_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    indicator_id: Mapped[str] = mapped_column(
        Text, primary_key=True, comment="empty: every indicator of the city"
    )
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GradingJob(Base):
    """A background computation of a city's CIM indicators, with its progress and outcome; at
    most one runs per city of a round."""

    __tablename__ = "grading_job"
    __table_args__ = (
        ForeignKeyConstraint(
            ["round_id", "city_code"],
            ["grading_city.round_id", "grading_city.code"],
            ondelete="CASCADE",
        ),
        CheckConstraint("status IN ('running', 'done', 'failed')", name="grading_job_status"),
        Index(
            "grading_job_one_per_city",
            "round_id",
            "city_code",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    round_id: Mapped[str] = mapped_column(String(64))
    city_code: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(Text, server_default="running")
    request: Mapped[dict[str, Any]] = mapped_column(
        JSONB, comment="what was asked: model, only, ..."
    )
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="step, done, of")
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    heartbeat_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """A grading API key: only its SHA-256 is stored; assessors are limited to their cities."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    cities: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    rounds: Mapped[list[str]] = mapped_column(
        ARRAY(Text),
        server_default="{}",
        comment="the rounds the key may write in; empty: every round (not for assessors)",
    )
    key_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """Append-only: who changed what, when, from what to what (a trigger refuses edits)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("audit_log_round_ix", "round_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    round_id: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Text)
    old: Mapped[Any] = mapped_column(JSONB, nullable=True)
    new: Mapped[Any] = mapped_column(JSONB, nullable=True)


# The live twin (OGC SensorThings API 1.1, Part 1 Sensing): entities with identity ids, as the
# standard's clients expect integers; `properties` and GeoJSON are kept as given.


class TwinThing(Base):
    """A SensorThings Thing; it may sit on or in a city object (`city_code`, `object_id`: the
    object's source id, as the Features API names it)."""

    __tablename__ = "twin_thing"
    __table_args__ = (
        ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="SET NULL"),
        Index("twin_thing_object_ix", "city_code", "object_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    city_code: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(Text)


class TwinLocation(Base):
    """A Location: its GeoJSON as given, and the geometry it describes (EPSG:4326) for filters."""

    __tablename__ = "twin_location"
    __table_args__ = (Index("twin_location_gix", "geom", postgresql_using="gist"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    encoding_type: Mapped[str] = mapped_column(Text)
    location: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=True)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TwinThingLocation(Base):
    """The current Locations of each Thing."""

    __tablename__ = "twin_thing_location"
    __table_args__ = (Index("twin_thing_location_location_ix", "location_id"),)

    thing_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_thing.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_location.id", ondelete="CASCADE"), primary_key=True
    )


class TwinHistoricalLocation(Base):
    """When a Thing came to its Locations (one row each time they change)."""

    __tablename__ = "twin_historical_location"
    __table_args__ = (Index("twin_historical_location_thing_ix", "thing_id", "time"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    thing_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_thing.id", ondelete="CASCADE")
    )
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TwinHistoricalLocationLocation(Base):
    """The Locations of each HistoricalLocation."""

    __tablename__ = "twin_historical_location_location"
    __table_args__ = (Index("twin_historical_location_location_ix", "location_id"),)

    historical_location_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_historical_location.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_location.id", ondelete="CASCADE"), primary_key=True
    )


class TwinSensor(Base):
    """A Sensor: the instrument or procedure that observes."""

    __tablename__ = "twin_sensor"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    encoding_type: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[Any] = mapped_column("metadata", JSONB)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TwinObservedProperty(Base):
    """An ObservedProperty: what is observed (PM2.5, traffic count, lamp state...)."""

    __tablename__ = "twin_observed_property"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    definition: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TwinDatastream(Base):
    """A Datastream: the Observations of one ObservedProperty by one Sensor on one Thing."""

    __tablename__ = "twin_datastream"
    __table_args__ = (
        Index("twin_datastream_thing_ix", "thing_id"),
        Index("twin_datastream_sensor_ix", "sensor_id"),
        Index("twin_datastream_property_ix", "observed_property_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    observation_type: Mapped[str] = mapped_column(Text)
    unit_of_measurement: Mapped[dict[str, Any]] = mapped_column(JSONB)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    thing_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_thing.id", ondelete="CASCADE")
    )
    sensor_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_sensor.id", ondelete="CASCADE")
    )
    observed_property_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_observed_property.id", ondelete="CASCADE")
    )


class TwinFeature(Base):
    """A FeatureOfInterest: what an Observation is about (by default its Thing's Location)."""

    __tablename__ = "twin_feature"
    __table_args__ = (
        Index("twin_feature_gix", "geom", postgresql_using="gist"),
        Index("twin_feature_location_ix", "location_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    encoding_type: Mapped[str] = mapped_column(Text)
    feature: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False), nullable=True)
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    location_id: Mapped[int | None] = mapped_column(
        BigInteger, comment="the Location it was made from, when made by CIM"
    )


class TwinObservation(Base):
    """Observations, partitioned by month of their phenomenon time (partitions are created by
    twin.observations in the schema `twin_parts`, ahead of time and on demand). A number result
    is `result_number`; any other result (text, boolean, object) is `result`. The primary key
    also serves a Datastream's time range; `id` alone has its own index."""

    __tablename__ = "twin_observation"
    __table_args__ = (
        Index("twin_observation_id_ix", "id"),
        {"postgresql_partition_by": "RANGE (phenomenon_start)"},
    )

    datastream_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    phenomenon_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, comment="from twin_observation_id_seq, reserved per batch"
    )
    phenomenon_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_number: Mapped[float | None] = mapped_column(Float)
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    feature_id: Mapped[int | None] = mapped_column(BigInteger)
    result_quality: Mapped[Any] = mapped_column(JSONB, nullable=True)
    valid_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class TwinLatest(Base):
    """The latest Observation of each Datastream and the span of all of them, kept as they
    arrive: colouring a city by its sensors reads this, never the history."""

    __tablename__ = "twin_latest"

    datastream_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("twin_datastream.id", ondelete="CASCADE"), primary_key=True
    )
    observation_id: Mapped[int] = mapped_column(BigInteger)
    phenomenon_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    phenomenon_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_number: Mapped[float | None] = mapped_column(Float)
    result: Mapped[Any] = mapped_column(JSONB, nullable=True)
    first_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    first_result_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_result_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the latest value as JSON text, [datastream, "time", result]: what a city's latest values
    # are joined from (api.twin_web), written by PostgreSQL whenever it changes (migration 0017)
    latest_row: Mapped[str] = mapped_column(
        Text,
        Computed(
            "'[' || datastream_id || ',\"' || twin_time_text(phenomenon_start) || '\",' || "
            "coalesce(result_number::text, result::text, 'null') || ']'",
            persisted=True,
        ),
        comment='the latest value as JSON text: [datastream, "time", result]',
    )


class TwinKey(Base):
    """A key for the twin: `reader` (reads when they are private), `device` (writes the
    Observations of its Things' Datastreams, over HTTP and MQTT), `manager` (every twin write).
    Only the key's SHA-256 is stored, and the hash the MQTT broker checks (mosquitto's PBKDF2)."""

    __tablename__ = "twin_key"
    __table_args__ = (
        CheckConstraint("role IN ('reader', 'device', 'manager')", name="twin_key_role"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    things: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default="{}")
    key_sha256: Mapped[str] = mapped_column(String(64))
    mqtt_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PlanningParcel(Base):
    """A planning parcel (控规地块) and the limits it sets, read from a planning layer."""

    __tablename__ = "planning_parcel"
    __table_args__ = (
        ForeignKeyConstraint(
            ["city_code", "dataset_id"], ["dataset.city_code", "dataset.id"], ondelete="CASCADE"
        ),
        UniqueConstraint("city_code", "dataset_id", "source_id"),
        CheckConstraint(
            "(height_limit IS NULL OR height_limit > 0 AND height_limit <= 1000)"
            " AND (far_limit IS NULL OR far_limit > 0 AND far_limit <= 50)"
            " AND (density_limit IS NULL OR density_limit > 0 AND density_limit <= 100)"
            " AND (green_ratio IS NULL OR green_ratio >= 0 AND green_ratio <= 100)",
            name="planning_parcel_limits",
        ),
        Index("planning_parcel_geom_gix", "geom", postgresql_using="gist"),
        {"comment": "planning parcels (控规地块) and the limits they set"},
    )

    city_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    dataset_id: Mapped[int] = mapped_column(BigInteger)
    source_id: Mapped[str] = mapped_column(
        Text, comment="layer.fid of the feature it was read from"
    )
    code: Mapped[str | None] = mapped_column(
        Text, comment="the parcel's own code (地块编码), when given"
    )
    land_use: Mapped[str | None] = mapped_column(Text)
    height_limit: Mapped[float | None] = mapped_column(
        Float, comment="metres above the ground (控高)"
    )
    far_limit: Mapped[float | None] = mapped_column(
        Float, comment="floor-area ratio, at most (容积率)"
    )
    density_limit: Mapped[float | None] = mapped_column(
        Float, comment="building density, at most, % (建筑密度)"
    )
    green_ratio: Mapped[float | None] = mapped_column(
        Float, comment="green ratio, at least, % (绿地率)"
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    geom = mapped_column(
        Geometry("MULTIPOLYGON", srid=FOOTPRINT_EPSG, spatial_index=False), nullable=False
    )
    area: Mapped[float] = mapped_column(Float, comment="on the ellipsoid, square metres")


class AnalysisRun(Base):
    """A planning analysis run on the model (an OGC API Processes job), kept with its inputs."""

    __tablename__ = "analysis_run"
    __table_args__ = (
        CheckConstraint(
            "status IN ('accepted', 'running', 'successful', 'failed', 'dismissed')",
            name="analysis_run_status",
        ),
        Index("analysis_run_id_ix", "id", unique=True),
        {"comment": "planning analyses run on the model, with their inputs"},
    )

    city_code: Mapped[str] = mapped_column(
        String(64), ForeignKey("city.code", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    process: Mapped[str] = mapped_column(Text)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text)
    message: Mapped[str | None] = mapped_column(Text)
    results: Mapped[Any] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
