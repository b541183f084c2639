"""City model: cities, datasets, city objects and their geometries.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "city",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name_zh", sa.Text()),
        sa.Column("name_en", sa.Text()),
        sa.Column("crs", sa.Text(), comment="Native CRS of its data, e.g. EPSG:4548"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    )
    op.create_table(
        "dataset",
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("format", sa.Text(), nullable=False),
        sa.Column("format_version", sa.Text()),
        sa.Column("source_crs", sa.Text(), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False, comment="SHA-256 of the source file"),
        sa.Column("object_count", sa.Integer(), nullable=False),
        sa.Column("counts", postgresql.JSONB(), nullable=False, comment="by type and by LoD"),
        sa.Column("warnings", postgresql.JSONB(), nullable=False),
        sa.Column("appearance", postgresql.JSONB(), nullable=False, comment="materials, textures"),
        sa.Column("file_metadata", postgresql.JSONB(), nullable=False),
        sa.Column("attribute_keys", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="ready", nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        sa.ForeignKeyConstraint(["city_code"], ["city.code"], ondelete="CASCADE"),
        sa.UniqueConstraint("city_code", "name"),
    )
    op.create_table(
        "city_object",
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("dataset_id", sa.BigInteger(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("parents", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("children", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("extra", postgresql.JSONB(), nullable=False, comment="other members"),
        sa.Column("lods", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "footprint",
            geoalchemy2.Geometry("GEOMETRY", srid=4326, spatial_index=False),
            nullable=True,
        ),
        sa.Column(
            "bbox", geoalchemy2.Geometry("POLYGON", srid=4326, spatial_index=False), nullable=True
        ),
        sa.Column("z_min", sa.Float(), comment="ellipsoidal metres"),
        sa.Column("z_max", sa.Float()),
        sa.ForeignKeyConstraint(
            ["city_code", "dataset_id"], ["dataset.city_code", "dataset.id"], ondelete="CASCADE"
        ),
        sa.UniqueConstraint("city_code", "source_id"),
    )
    op.create_index("city_object_bbox_gix", "city_object", ["bbox"], postgresql_using="gist")
    op.create_index("city_object_type_ix", "city_object", ["city_code", "type"])
    op.create_index("city_object_dataset_ix", "city_object", ["city_code", "dataset_id"])
    op.create_table(
        "object_geometry",
        sa.Column("city_code", sa.String(64), primary_key=True),
        sa.Column("object_id", sa.BigInteger(), primary_key=True),
        sa.Column("idx", sa.SmallInteger(), primary_key=True),
        sa.Column("lod", sa.Text()),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column(
            "geom", geoalchemy2.Geometry("GEOMETRYZ", srid=4979, spatial_index=False), nullable=True
        ),
        sa.Column("structure", postgresql.JSONB(), nullable=False),
        sa.Column("origin_x", sa.Float()),
        sa.Column("origin_y", sa.Float()),
        sa.Column("origin_z", sa.Float()),
        sa.Column("mesh_vertices", sa.LargeBinary()),
        sa.Column("mesh_triangles", sa.LargeBinary()),
        sa.Column("mesh_surfaces", sa.LargeBinary()),
        sa.ForeignKeyConstraint(
            ["city_code", "object_id"],
            ["city_object.city_code", "city_object.id"],
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("object_geometry")
    op.drop_table("city_object")
    op.drop_table("dataset")
    op.drop_table("city")
