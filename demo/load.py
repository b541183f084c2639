"""`make run`'s demo: the synthetic city, generated once and ingested as city 370100 with its
planning parcels, and the demo grading round; each is loaded only when it is not there yet, so
a second run is quick."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from demo.city import generate_city
from demo.parcels import write_parcels
from demo.round import load_demo_round
from ingest.datasets import dataset_checksum
from ingest.parcels import ingest_parcels
from ingest.pipeline import file_checksum, ingest_files

DEMO_CITY = "370100"
DEMO_NAMES = ("济南市（示例）", "Jinan (demo)")


@dataclass(frozen=True)
class DemoLoad:
    """What `load_demo` did."""

    path: Path  # the generated CityJSON file
    objects: int | None  # city objects ingested now; None when that file was already loaded
    round_created: bool  # the demo grading round was created now
    parcels: int | None = None  # planning parcels ingested now; None when already loaded


def load_demo(engine: Engine, data_dir: Path, buildings: int = 3000, seed: int = 42) -> DemoLoad:
    """Generate the demo city under `data_dir/demo` (once), ingest it as city 370100 unless that
    very file is loaded, and create the demo grading round unless it exists."""
    path = data_dir / "demo" / f"demo-{buildings}-{seed}.city.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        generate_city(path, buildings=buildings, seed=seed)
    objects = None
    if dataset_checksum(engine, DEMO_CITY, path.name) != file_checksum(path):
        reports = ingest_files(
            engine, [path], DEMO_CITY, city_name_zh=DEMO_NAMES[0], city_name_en=DEMO_NAMES[1]
        )
        objects = reports[0].object_count
    plan = data_dir / "demo" / f"demo-{buildings}-{seed}.parcels.geojson"
    if not plan.exists():
        write_parcels(plan, buildings, seed)
    parcels = None
    if dataset_checksum(engine, DEMO_CITY, plan.name) != file_checksum(plan):
        parcels = ingest_parcels(engine, plan, DEMO_CITY, name=plan.name).parcel_count
    return DemoLoad(path, objects, load_demo_round(engine, DEMO_CITY), parcels)
