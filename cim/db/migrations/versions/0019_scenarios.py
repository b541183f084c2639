"""Design schemes (方案): a scheme is a scenario of a city, held as a city of its own whose code is
`{city}~{scenario}` and whose `base_city` names the city it is a scheme for. The baseline's own
rows never change; the scenario's view of the city is the baseline's objects, less those the
scheme replaces (same id), and the scheme's.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE city
    ADD COLUMN base_city varchar(64) REFERENCES city (code) ON DELETE CASCADE,
    ADD COLUMN scenario text,
    ADD CONSTRAINT city_scenario CHECK ((base_city IS NULL) = (scenario IS NULL));
COMMENT ON COLUMN city.base_city IS 'the city this is a design scheme for (NULL: a city)';
COMMENT ON COLUMN city.scenario IS 'the scheme''s name, e.g. scheme-a';
CREATE UNIQUE INDEX city_scenario_ix ON city (base_city, scenario) WHERE base_city IS NOT NULL;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(
        "DROP INDEX city_scenario_ix; ALTER TABLE city DROP CONSTRAINT city_scenario, "
        "DROP COLUMN scenario, DROP COLUMN base_city;"
    )
