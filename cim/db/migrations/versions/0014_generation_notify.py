"""Serving processes hear when a city's data changes: a NOTIFY on channel `cim_generation`, with
the city's code as payload, whenever a dataset row is inserted, deleted or changes status. It is
sent when the writing transaction commits (never for one that rolls back), so a process that
LISTENs can serve warm tiles and tileset JSON from its memory, without asking the database on
every request, and still drop them the moment an ingest, replace or delete commits.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE OR REPLACE FUNCTION dataset_generation_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE d dataset;
        BEGIN
            IF TG_OP = 'DELETE' THEN d := OLD; ELSE d := NEW; END IF;
            PERFORM pg_notify('cim_generation', d.city_code);
            RETURN NULL;
        END $$""")
    op.execute("DROP TRIGGER IF EXISTS dataset_generation_notify ON dataset")
    op.execute("""
        CREATE TRIGGER dataset_generation_notify
        AFTER INSERT OR DELETE OR UPDATE OF status, city_code ON dataset
        FOR EACH ROW EXECUTE FUNCTION dataset_generation_notify()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS dataset_generation_notify ON dataset")
    op.execute("DROP FUNCTION IF EXISTS dataset_generation_notify()")
