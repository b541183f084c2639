"""Seeding with several processes: each process keeps its database connections for all its
shares of the tiles (a new PostgreSQL backend pays a page fault for every shared buffer it
touches), and the tiles they keep are the ones one process makes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, text

from demo.city import generate_city
from ingest.pipeline import ingest_files
from tiles.service import TileService


def _sessions(engine: Engine) -> int:
    """Sessions opened on the test's database so far (PostgreSQL counts each backend)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            ).scalar_one()
        )


def _kept(engine: Engine) -> dict[tuple[int, int, int], str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT tile_level, tile_x, tile_y, etag FROM tile_cache WHERE city_code = 's'")
        ).all()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_workers_keep_their_connections_and_make_what_one_process_makes(
    engine: Engine, tmp_path: Path
) -> None:
    path = generate_city(tmp_path / "s.city.json", buildings=3000, seed=9, only_buildings=True).path
    ingest_files(engine, [path], "s")
    service = TileService(engine)
    keys = service.tileset("s")
    engine.dispose()
    before = _sessions(engine)
    count = service.seed("s", workers=2)
    opened = _sessions(engine) - before
    made = _kept(engine)
    assert count == len(made) >= 16  # 2 workers × 4 shares each, with tiles to spare
    # per worker a reading and a writing connection for its 4 shares, and the seeding's own
    # (one per share and worker was 16 and more)
    assert opened <= 2 * 2 + 2, opened
    assert keys  # the tileset is read before and after
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tile_cache WHERE city_code = 's'"))
    assert TileService(engine).seed("s", workers=1) == count
    assert _kept(engine) == made  # the same contents (etags are their SHA-256)
