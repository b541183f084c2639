"""A tile made while a dataset of its city is being deleted or replaced is served from the data
as committed, but not kept: once the change commits, no cached tile shows what it removed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from cim.errors import NotFound
from ingest.pipeline import ingest_files
from tests.ingest.test_cityjson_files import FILES
from tests.tiles.conftest import assert_served_tilesets_valid
from tiles.service import TileService, content_keys


def _cached(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM tile_cache")).scalar_one())


def _city(new_database: Callable[[], Engine]) -> Engine:
    engine = new_database()
    ingest_files(engine, [next(p for p in FILES if p.name == "delft.city.json")], "nl")
    return engine


def test_tiles_made_during_a_deletion_do_not_outlive_it(
    new_database: Callable[[], Engine],
) -> None:
    engine = _city(new_database)
    service = TileService(engine)
    keys = content_keys(service.tileset("nl"))
    assert keys and _cached(engine) == 0
    with engine.connect() as deleting:  # an operator's deletion, not yet committed
        deleting.execute(text("DELETE FROM dataset WHERE city_code = 'nl'"))
        for key in keys:
            content, _ = service.tile("nl", key)  # made from the data as committed
            assert content
        assert _cached(engine) == 0  # ... served, and not kept
        deleting.commit()
    assert _cached(engine) == 0
    with pytest.raises(NotFound):
        TileService(engine).tile("nl", keys[0])  # the objects are gone, and so is the tile


def test_tiles_are_kept_again_once_the_change_is_over(
    new_database: Callable[[], Engine], tmp_path: Path
) -> None:
    engine = _city(new_database)
    service = TileService(engine)
    keys = content_keys(service.tileset("nl"))
    with engine.connect() as replacing:  # the first step of a re-ingest: the old dataset goes
        replacing.execute(text("DELETE FROM dataset WHERE city_code = 'nl'"))
        made = {key: service.tile("nl", key)[0] for key in keys}
        assert _cached(engine) == 0
        replacing.rollback()  # the re-ingest failed: the old data stays
    assert {key: service.tile("nl", key)[0] for key in keys} == made
    assert _cached(engine) == len(keys)
    assert_served_tilesets_valid(engine, ["nl"], tmp_path)


def test_seeding_during_a_deletion_keeps_nothing(new_database: Callable[[], Engine]) -> None:
    """Seeding reads a batch's rows ahead of making them: a change under way when it reads or
    keeps them leaves nothing kept (the tiles are made one by one, from the data as
    committed, as requests would make them)."""
    engine = _city(new_database)
    service = TileService(engine)
    keys = content_keys(service.tileset("nl"))
    with engine.connect() as deleting:
        deleting.execute(text("DELETE FROM dataset WHERE city_code = 'nl'"))
        service.seed("nl", workers=1)
        assert service.results["made"] == len(keys)  # made, served ...
        assert _cached(engine) == 0  # ... and not kept
        deleting.rollback()
    service.seed("nl", workers=1)  # the change did not happen: now they are kept
    assert _cached(engine) == len(keys)
