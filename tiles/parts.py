"""The parts of over-full tiles (tiles.split) kept in `tile_cache`, so that a seeded city serves
every content of its implicit tileset without making it, and a restart loses none.

A part draws on several tiles' objects, so the trigger that forgets the tiles a dataset touches
(migration 0007) cannot name the parts it changes. A kept part is found instead by a format of
its own (`CELL_FORMAT`: no clash with the tile at the same key), a `variant` of the settings
that change it (meshopt, and the content budget that decides which objects it holds) and a
`made_with` of the code that writes contents and plans parts, the city's property schema and
its generation: any change of the city's data makes every part again. The rows themselves are
written with tiles.service's statement (the one module that writes `tile_cache`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text

from cim.settings import TileSettings
from tiles.cache_key import made_with
from tiles.properties import PropertySchema
from tiles.split import plan

if TYPE_CHECKING:
    from tiles.schema import Generation

Key = tuple[int, int, int]  # level, x, y of a cell

CELL_FORMAT = "cell.glb"  # the `tile_cache` format of part contents (GLB, 3D Tiles 1.1)
# and by content format: 3D Tiles 1.0 parts are made as tiles are (b3dm, pnts or cmpt by rule)
CELL_FORMATS = {"glb": CELL_FORMAT, "b3dm": "cell.b3dm"}
BATCH_BYTES = 32_000_000  # estimated content bytes of the parts read in one query (seeding)

# a kept content is a cache: a crash costs a remake, so no commit waits for the disk
_LAZY_COMMIT = text("SET LOCAL synchronous_commit = off")
_UNCHANGING = text("SELECT 1 FROM city WHERE code = :c FOR SHARE SKIP LOCKED")
_KEPT = text("""
    SELECT tile_level, tile_x, tile_y FROM tile_cache
    WHERE city_code = :c AND format = :f AND variant = :v AND made_with = :m""")
_KEPT_CONTENT = text("""
    SELECT content, etag FROM tile_cache
    WHERE city_code = :c AND tile_level = :l AND tile_x = :x AND tile_y = :y AND format = :f
      AND variant = :v AND made_with = :m""")


def cell_variant(settings: TileSettings, budget: int) -> str:
    """The `variant` of kept parts: the settings that change their bytes (meshopt) and which
    objects they hold (the content budget)."""
    return hashlib.sha256(f"{settings.meshopt} {budget}".encode()).hexdigest()[:16]


def cell_made_with(schema: PropertySchema, ids: Generation) -> str:
    """The `made_with` of kept parts: the code that writes contents and plans parts, the
    city's property schema, and its generation."""
    made = f"{made_with(schema)} {_plan_revision()} {','.join(map(str, ids))}"
    return hashlib.sha256(made.encode()).hexdigest()[:16]


@cache
def _plan_revision() -> str:
    """A digest of the source of the modules that decide which objects a part holds."""
    digest = hashlib.sha256()
    for source in (__file__, inspect.getfile(plan)):
        digest.update(Path(source).read_bytes())
    return digest.hexdigest()[:16]


def etag(content: bytes) -> str:
    """A content's ETag (as tiles.service gives tiles theirs)."""
    return hashlib.sha256(content).hexdigest()[:32]


def kept_keys(conn: Connection, city: str, variant: str, stamp: str, fmt: str = "glb") -> set[Key]:
    """The cells whose parts are kept for this variant and stamp, in content format `fmt`."""
    given = {"c": city, "f": CELL_FORMATS[fmt], "v": variant, "m": stamp}
    return {(r[0], r[1], r[2]) for r in conn.execute(_KEPT, given)}


def kept_content(
    conn: Connection, city: str, key: Key, variant: str, stamp: str, fmt: str = "glb"
) -> tuple[bytes, str] | None:
    """A part's content (format `fmt`) and ETag as kept for this variant and stamp, if it is."""
    level, x, y = key
    f = CELL_FORMATS[fmt]
    given = {"c": city, "l": level, "x": x, "y": y, "f": f, "v": variant, "m": stamp}
    row = conn.execute(_KEPT_CONTENT, given).first()
    return None if row is None else (bytes(row[0]), str(row[1]))


def may_keep(conn: Connection, city: str) -> bool:
    """Start keeping in this transaction: False while a dataset of the city is changing
    (migration 0007's trigger holds the city's row until the change commits, then forgets
    what is kept), when what is made now is served but not kept."""
    conn.execute(_LAZY_COMMIT)
    return conn.execute(_UNCHANGING, {"c": city}).first() is not None


def keep(
    conn: Connection,
    city: str,
    made: dict[Key, bytes],
    variant: str,
    stamp: str,
    fmt: str = "glb",
) -> None:
    """Keep these parts (content format `fmt`) in `tile_cache`, in place of any kept before at
    their cells."""
    from tiles.service import keep_contents  # the one module that writes tile_cache

    rows = [
        {
            "c": city,
            "l": level,
            "x": x,
            "y": y,
            "f": CELL_FORMATS[fmt],
            "v": variant,
            "m": stamp,
            "content": content,
            "etag": etag(content),
        }
        for (level, x, y), content in made.items()
    ]
    keep_contents(conn, rows)


def batches(keys: Sequence[Key], weights: dict[Key, int]) -> Iterator[list[Key]]:
    """Cells in runs of at most BATCH_BYTES of estimated content (one cell at least)."""
    batch: list[Key] = []
    size = 0
    for key in keys:
        if batch and size + weights[key] > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(key)
        size += weights[key]
    if batch:
        yield batch
