"""The ORM models and the migrations describe the same schema: alembic's autogenerate
comparison of a migrated database against `cim.db.models` finds nothing to change."""

from __future__ import annotations

from datetime import UTC
from urllib.parse import quote

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import Engine, text

from cim.db.engine import make_engine
from cim.db.models import Base


def test_models_match_the_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": alembic_helpers.include_object,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "\n".join(map(str, differences))


def test_sessions_run_without_jit_in_utc_unless_the_url_says_otherwise(engine: Engine) -> None:
    """Compiling a query took longer than it saved (the weighing of a city's tiles); a URL's own
    `options` are the operator's and stay."""
    url = engine.url.render_as_string(hide_password=False)
    with engine.connect() as conn:
        assert conn.execute(text("SHOW jit")).scalar_one() == "off"
        assert conn.execute(text("SHOW TimeZone")).scalar_one() == "UTC"
        assert conn.execute(text("SELECT now()")).scalar_one().tzinfo is UTC
    options = "-c jit=on -c work_mem=7MB -c extra_float_digits=0"
    own = make_engine(url + "?options=" + quote(options))
    try:
        with own.connect() as conn:
            assert conn.execute(text("SHOW jit")).scalar_one() == "on"
            assert conn.execute(text("SHOW work_mem")).scalar_one() == "7MB"
            # but numbers go both ways to their last digit, whatever the options say
            assert conn.execute(text("SHOW extra_float_digits")).scalar_one() == "1"
            added = text("SELECT CAST(0.1 AS float8) + CAST(0.2 AS float8)")
            assert conn.execute(added).scalar_one() == 0.1 + 0.2 != 0.3
    finally:
        own.dispose()
