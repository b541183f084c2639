"""Sunlight hours: the sun where NREL's SPA (pvlib) puts it; a window with nothing around it gets
the whole standard window; a window behind an endless east-west slab gets what the profile-angle
formula gives; rays meet the meshes stored in PostGIS; bad requests are refused."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pvlib
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from analysis import sun
from api.app import create_app
from cim.settings import ApiSettings
from cli.main import main
from tests.analysis.test_planning import CRS, layer, rectangle

JINAN = (117.1201, 36.6512)


def epoch_seconds(times: pd.DatetimeIndex) -> np.ndarray:
    return np.asarray((times - pd.Timestamp("1970-01-01", tz="UTC")).total_seconds())


def test_sun_positions_match_spa_over_a_year() -> None:
    lon, lat = JINAN
    times = pd.date_range("2027-01-01", "2027-12-31 23:59", freq="17min", tz="UTC")
    elevation, azimuth = sun.position(epoch_seconds(times), lon, lat, 50.0)
    spa = pvlib.solarposition.get_solarposition(
        times, lat, lon, altitude=50.0, method="nrel_numpy", pressure=101325, temperature=12
    )
    up = spa["apparent_elevation"].to_numpy() > 0
    assert up.sum() > 7000  # half a year of daylight samples
    d_el = np.abs(elevation - spa["apparent_elevation"].to_numpy())[up]
    d_az = np.abs((azimuth - spa["azimuth"].to_numpy() + 180) % 360 - 180)[up]
    assert d_el.max() < 0.05 and d_az.max() < 0.05, (d_el.max(), d_az.max())


def test_standard_days_and_true_solar_time() -> None:
    # 大寒 and 冬至 as the Chinese calendar gives them (China Standard Time)
    assert [str(sun.term_of("大寒", y)) for y in (2026, 2027, 2028)] == [
        "2026-01-20", "2027-01-20", "2028-01-20",
    ]  # fmt: skip
    assert [str(sun.term_of("冬至", y)) for y in (2026, 2027, 2028)] == [
        "2026-12-22", "2027-12-22", "2028-12-21",
    ]  # fmt: skip
    # true solar noon is when SPA's sun crosses the meridian: its azimuth is 180°
    lon, lat = JINAN
    [noon] = sun.solar_instants(sun.term_of("大寒", 2027), lon, np.array([720.0]))
    at = pd.DatetimeIndex([pd.Timestamp(noon, unit="s", tz="UTC")])
    spa = pvlib.solarposition.get_solarposition(at, lat, lon, method="nrel_numpy")
    assert abs(spa["azimuth"].iloc[0] - 180.0) < 0.02
    # and its equation of time agrees with SPA's to the second
    mean_noon = pd.Timestamp("2027-01-20 12:00", tz="UTC") - pd.Timedelta(minutes=4 * lon)
    eot = spa["equation_of_time"].iloc[0]  # minutes
    assert abs((mean_noon - pd.Timedelta(minutes=eot)).timestamp() - noon) < 2.0


@pytest.fixture(scope="module")
def site(new_database: Callable[[], Engine], tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """An endless slab (600 m east-west, 10 m thick, 25 m high) 50 m south of a one-storey
    house (10 m x 10 m, 3 m); a lone house 2 km away with nothing around it. The slab is no
    longer because meshes are flat triangles between points on the ellipsoid: the top of a
    4 km slab, two triangles end to end, sags 0.31 m below 25 m in its middle (the chord under
    the Earth's curve), and the house saw 5 minutes more sun than the formula gives. At the
    lowest sun of the window the ray leaves the slab 80 m east or west of the house."""
    engine = new_database()
    folder = tmp_path_factory.mktemp("sun")
    path = layer(
        folder / "site.geojson",
        [
            (rectangle(-300, -60, 600, 10), {"id": "slab", "height": 25.0, "floors": 8}),
            (rectangle(0, 0, 10, 10), {"id": "house", "height": 3.0, "floors": 1}),
            (rectangle(0, 2000, 10, 10), {"id": "lone", "height": 3.0, "floors": 1}),
        ],
    )
    env = {"CIM_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    done = CliRunner().invoke(
        main,
        ["ingest", str(path), "--city", "jinan", "--crs", CRS, "--height-attr", "height"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    return engine


def source_ids(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT attributes ->> 'id', source_id FROM city_object")).all()
    return dict(rows)


def run(engine: Engine, inputs: dict[str, Any]) -> dict[str, Any]:
    client = TestClient(create_app(engine=engine, settings=ApiSettings()))
    answer = client.post("/processes/sunlight/execution", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    return answer.json()


def south(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in points if abs(p["facade_azimuth"] - 180.0) < 1.0]


def test_nothing_around_gets_the_whole_window(site: Engine) -> None:
    ids = source_ids(site)
    out = run(site, {"city": "jinan", "buildings": [ids["lone"]], "year": 2027})
    assert out["date"] == "2027-01-20" and out["window"] == ["08:00", "16:00"]
    facing_south = south(out["points"])
    assert len(facing_south) == 3  # 10 m of facade, a point every 3 m, one floor
    for p in facing_south:
        assert p["minutes"] == 480 and p["intervals"] == [["08:00", "16:00"]] and p["passes"]
    # the north facade never sees the sun in the window: left out; east and west see part
    assert {round(p["facade_azimuth"]) for p in out["points"]} == {90, 180, 270}
    east = [p for p in out["points"] if round(p["facade_azimuth"]) == 90]
    assert all(p["intervals"][0][0] == "08:00" and p["intervals"][-1][1] == "12:00" for p in east)
    # 冬至: its own window, 9:00-15:00; the point given alone, facing south
    out = run(site, {"city": "jinan", "buildings": [ids["lone"]], "date": "冬至", "year": 2027})
    assert out["date"] == "2027-12-22" and {p["minutes"] for p in south(out["points"])} == {360}


def expected_minutes(lon: float, lat: float, day: str, rise: float, gap: float) -> float:
    """Minutes of sun between 8:00 and 16:00 true solar time behind an endless east-west wall
    `rise` m above the point, `gap` m south of it: the sun clears the wall when its profile
    angle on the north-south plane, tan(p) = tan(elevation) / cos(azimuth - 180°), exceeds
    atan(rise / gap). Sampled every 5 s with SPA's positions and equation of time."""
    noon = pd.Timestamp(f"{day} 12:00", tz="UTC") - pd.Timedelta(minutes=4 * lon)
    times = pd.date_range(noon - pd.Timedelta(hours=4.5), noon + pd.Timedelta(hours=4.5),
                          freq="5s")  # fmt: skip
    spa = pvlib.solarposition.get_solarposition(times, lat, lon, method="nrel_numpy",
                                                pressure=101325, temperature=12)  # fmt: skip
    solar = (times - noon).total_seconds() / 60.0 + 720.0 + spa["equation_of_time"].to_numpy()
    inside = (solar >= 480.0) & (solar < 960.0)
    el = np.radians(spa["apparent_elevation"].to_numpy())
    az = np.radians(spa["azimuth"].to_numpy())
    towards = np.cos(az - math.pi)  # the sun's horizontal direction, south component
    profile = np.where(towards > 0, np.tan(el) / np.where(towards > 0, towards, 1), 0.0)
    lit = inside & (el > 0) & (profile > rise / gap)
    return float(lit.sum() * 5.0 / 60.0)


def test_behind_an_endless_slab_the_profile_angle_formula_holds(site: Engine) -> None:
    ids = source_ids(site)
    out = run(site, {"city": "jinan", "buildings": [ids["house"]], "year": 2027})
    with site.connect() as conn:
        lon, lat = conn.execute(
            text("SELECT ST_X(ST_Centroid(footprint)), ST_Y(ST_Centroid(footprint)) "
                 "FROM city_object WHERE attributes ->> 'id' = 'house'")
        ).one()  # fmt: skip
    expected = expected_minutes(lon, lat, "2027-01-20", rise=25.0 - 0.9, gap=50.0 + 0.05)
    assert 60 < expected < 420  # the slab takes part of the day, not all of it
    facing_south = south(out["points"])
    assert len(facing_south) == 3
    for p in facing_south:
        assert abs(p["minutes"] - expected) <= 2.0, (p["minutes"], expected)
        [(start, end)] = p["intervals"]  # one spell around noon
        assert start > "08:00" and end < "16:00"
    assert out["obstacles"]["objects"] >= 2 and out["obstacles"]["triangles"] >= 24
    # the rule: 2 hours on 大寒 for a large city in climate zone II (Jinan)
    assert out["rule"]["min_hours"] == 2.0 and "II" in out["rule"]["standard"]
    assert all(p["passes"] == (p["minutes"] >= 120) for p in out["points"])
    # a stricter local rule: 6.5 hours in one spell (it has about 6)
    strict = run(site, {"city": "jinan", "buildings": [ids["house"]], "year": 2027,
                        "min_hours": 6.5, "accumulate": "continuous"})  # fmt: skip
    assert not any(p["passes"] for p in south(strict["points"]))


@pytest.mark.parametrize(
    ("inputs", "status", "says"),
    [
        ({"city": "jinan"}, 400, "'buildings'"),
        ({"city": "jinan", "buildings": ["no-such-building"]}, 404, "no-such-building"),
        ({"city": "jinan", "buildings": ["x"], "date": "2027-02-30"}, 400, "YYYY-MM-DD"),
        ({"city": "jinan", "buildings": ["x"], "window": ["16:00", "08:00"]}, 400, "not after"),
        ({"city": "jinan", "buildings": ["x"], "step_minutes": 7}, 400, "divide"),
        ({"city": "jinan", "buildings": ["x"], "climate_zone": "IX"}, 400, "climate_zone"),
        # a place in the polar night: no sun on 冬至
        (
            {"city": "jinan", "points": [{"lon": 15.6, "lat": 78.2, "height": 40}], "date": "冬至"},
            400,
            "does not rise",
        ),
        (
            {
                "city": "jinan",
                "points": [{"lon": 117.1, "lat": 36.6, "height": 40}],
                "window": ["00:00", "04:00"],
            },
            400,
            "does not rise",
        ),
    ],
)
def test_bad_sunlight_requests(
    site: Engine, inputs: dict[str, Any], status: int, says: str
) -> None:
    client = TestClient(create_app(engine=site, settings=ApiSettings()))
    answer = client.post("/processes/sunlight/execution", json={"inputs": inputs})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["detail"]


def test_points_of_their_own_from_the_command_line(site: Engine, tmp_path: Path) -> None:
    """A point given alone, facing south, in front of the house: behind the slab too."""
    with site.connect() as conn:
        lon, lat, z = conn.execute(
            text("SELECT ST_X(ST_Centroid(footprint)), ST_YMin(footprint), z_min "
                 "FROM city_object WHERE attributes ->> 'id' = 'house'")
        ).one()  # fmt: skip
    points = tmp_path / "points.json"
    points.write_text(json.dumps([{"lon": lon, "lat": lat - 1e-6, "height": z + 0.9,
                                   "facing": 180}]))  # fmt: skip
    env = {"CIM_DATABASE_URL": site.url.render_as_string(hide_password=False)}
    done = CliRunner().invoke(
        main, ["analyse", "sunlight", "--city", "jinan", "--points", str(points), "--year", "2027",
               "--json"], env=env,
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    [p] = json.loads(done.output)["points"]
    expected = expected_minutes(lon, lat, "2027-01-20", rise=25.0 - 0.9, gap=50.0 - 0.111 + 0.05)
    assert abs(p["minutes"] - expected) <= 2.0
