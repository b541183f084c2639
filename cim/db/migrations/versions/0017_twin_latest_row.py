"""Each Datastream's latest value kept as the JSON text a city's latest values are made of
(`[datastream, "time", result]`, api.twin_web's /twin/{city}/latest), computed by PostgreSQL
whenever the latest value changes: writing 10,000 times with to_char on every read took half
of that answer's 25 ms.

`twin_time_text` writes a time as SensorThings answers do (UTC, milliseconds, Z). It is
IMMUTABLE, as a generated column asks: its format has no locale-dependent field and names its
time zone, so no setting changes what it gives.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE FUNCTION twin_time_text(t timestamptz) RETURNS text
    IMMUTABLE PARALLEL SAFE STRICT LANGUAGE sql
    RETURN to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
ALTER TABLE twin_latest ADD COLUMN latest_row text GENERATED ALWAYS AS (
    '[' || datastream_id || ',"' || twin_time_text(phenomenon_start) || '",'
    || coalesce(result_number::text, result::text, 'null') || ']') STORED;
COMMENT ON COLUMN twin_latest.latest_row IS
    'the latest value as JSON text: [datastream, "time", result]';
"""

DOWNGRADE = """
ALTER TABLE twin_latest DROP COLUMN latest_row;
DROP FUNCTION twin_time_text(timestamptz);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
