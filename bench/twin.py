"""The live twin at load: Observations stored per second over HTTP (Data Array) and over MQTT
end to end into PostgreSQL, latest values of 10,000 Datastreams, one Datastream's day among
10 million stored Observations, bytes per stored Observation, and the serving process's memory
through a long MQTT run. `cim serve` and CIM's own mosquitto run as processes of their own,
as in production; clients are separate processes too. Not a test: it prints figures.

    python bench/twin.py                       # all, with a 10-minute MQTT run
    python bench/twin.py --mqtt-minutes 1 --stored 1000000   # quicker
    python bench/twin.py --parts http,mqtt --stored 100000 --workers 1   # some parts

Targets on a 2-core machine (issue 16): ≥ 50,000 Observations/s over HTTP, ≥ 20,000/s over
MQTT, latest values p95 ≤ 50 ms, a day p95 ≤ 20 ms, memory flat over the MQTT run. The MQTT
devices offer a set rate (`--mqtt-offer`, above the target): what is stored of it shows what
the service takes, and what is not stored is counted (QoS 0, as sensors publish).
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._cluster import bench_database  # noqa: E402
from bench._gauge import gauge_ms  # noqa: E402
from bench.tiles import _free_port  # noqa: E402
from cim.db.engine import make_engine  # noqa: E402
from twin.access import create_key  # noqa: E402
from twin.entities import parse_path  # noqa: E402
from twin.observations import PARTITIONS, refresh_latest  # noqa: E402
from twin.store import Writer, create  # noqa: E402

MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
MANAGER = Writer("bench", "manager")
DAY = datetime(2026, 10, 15, tzinfo=UTC)  # the day read back, inside the stored history


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_datastreams(engine: Engine, n: int, per_thing: int = 100) -> list[int]:
    """n Datastreams on n / per_thing Things (one Sensor and ObservedProperty shared)."""
    sensor = create(
        engine,
        parse_path("Sensors"),
        {"name": "bench", "description": "d", "encodingType": "text/html", "metadata": "m"},
        MANAGER,
    ).id
    prop = create(
        engine,
        parse_path("ObservedProperties"),
        {"name": "bench", "definition": "d", "description": "d"},
        MANAGER,
    ).id
    for t in range(n // per_thing):
        create(
            engine,
            parse_path("Things"),
            {
                "name": f"thing {t}",
                "description": "d",
                "Locations": [
                    {
                        "name": "l",
                        "description": "d",
                        "encodingType": "application/geo+json",
                        "location": {"type": "Point", "coordinates": [117.0 + t * 1e-4, 36.6]},
                    }
                ],
                "Datastreams": [
                    {
                        "name": f"ds {t}.{i}",
                        "description": "d",
                        "observationType": MEASUREMENT,
                        "unitOfMeasurement": {"name": "n", "symbol": "", "definition": "d"},
                        "Sensor": {"@iot.id": sensor},
                        "ObservedProperty": {"@iot.id": prop},
                    }
                    for i in range(per_thing)
                ],
            },
            MANAGER,
        )
    with engine.begin() as conn:  # the Things are a city's, for the viewer's sensors route
        conn.execute(text("INSERT INTO city (code) VALUES ('bench') ON CONFLICT DO NOTHING"))
        conn.execute(text("UPDATE twin_thing SET city_code = 'bench'"))
        return list(conn.execute(text("SELECT id FROM twin_datastream ORDER BY id")).scalars())


def fill_history(engine: Engine, datastreams: list[int], total: int) -> float:
    """`total` Observations spread over the Datastreams, one a minute ending at DAY's end, in
    SQL (the history a city gathers, not what is measured). Returns seconds."""
    per = max(1, total // len(datastreams))
    start = DAY + timedelta(days=1) - timedelta(minutes=per)
    PARTITIONS.ensure(engine, [start, DAY + timedelta(days=1)])
    began = time.perf_counter()
    with engine.begin() as conn:
        feature = conn.execute(text("SELECT min(id) FROM twin_feature")).scalar()
        if feature is None:
            feature = conn.execute(
                text(
                    "INSERT INTO twin_feature (name, description, encoding_type, feature) "
                    "VALUES ('f', 'd', 'application/geo+json', "
                    '\'{"type": "Point", "coordinates": [117, 36.6]}\') RETURNING id'
                )
            ).scalar_one()
        for chunk in range(0, len(datastreams), 500):
            conn.execute(
                text("""
                INSERT INTO twin_observation (datastream_id, phenomenon_start, id, result_number,
                                              feature_id)
                SELECT d, :start + make_interval(mins => m),
                       nextval('twin_observation_id_seq'), random() * 100, :f
                FROM unnest(CAST(:ds AS bigint[])) d, generate_series(0, :per - 1) m"""),
                {"start": start, "ds": datastreams[chunk : chunk + 500], "per": per, "f": feature},
            )
        refresh_latest(conn, datastreams)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(
            text("VACUUM ANALYZE twin_observation")
        )
    return time.perf_counter() - began


def bytes_per_observation(engine: Engine) -> tuple[int, float]:
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM twin_observation")).scalar_one()
        size = conn.execute(
            text("""
            SELECT sum(pg_total_relation_size(i.inhrelid)) FROM pg_inherits i
            WHERE i.inhparent = 'twin_observation'::regclass""")
        ).scalar_one()
    return count, size / max(count, 1)


def _data_array_client(
    base: str,
    key: str,
    datastreams: list[int],
    rows: int,
    requests: int,
    offset: int,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One client process: `requests` CreateObservations of `rows` rows each (the bodies made
    before the clock starts: the bench measures the service, not its load generator). Each
    round of the bench writes times of its own (`offset`)."""
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120)
    t0 = DAY + timedelta(days=2, seconds=offset * 10_000_000)
    per_ds = rows // len(datastreams)
    bodies = [
        json.dumps(
            [
                {
                    "Datastream": {"@iot.id": ds},
                    "components": ["phenomenonTime", "result"],
                    "dataArray": [
                        [(t0 + timedelta(seconds=r * per_ds + i)).isoformat(), float(i % 97)]
                        for i in range(per_ds)
                    ],
                }
                for ds in datastreams
            ]
        )
        for r in range(requests)
    ]
    ready.put(None)
    go.wait()
    sent = 0
    began = time.perf_counter()
    for body in bodies:
        answer = http.post(
            "/v1.1/CreateObservations",
            content=body,
            headers={"content-type": "application/json"},
        )
        answer.raise_for_status()
        sent += sum(1 for link in answer.json() if link != "error")
    out.put((sent, time.perf_counter() - began))


def http_rate(
    base: str,
    key: str,
    datastreams: list[int],
    clients: int,
    rows: int,
    requests: int,
    round_: int = 0,
) -> float:
    """Observations stored per second over HTTP by `clients` processes at once."""
    queue: Any = multiprocessing.Queue()
    ready: Any = multiprocessing.Queue()
    go: Any = multiprocessing.Event()
    procs = [
        multiprocessing.Process(
            target=_data_array_client,
            args=(
                base,
                key,
                datastreams[c * 10 : (c + 1) * 10],
                rows,
                requests,
                round_ * clients + c,
                ready,
                go,
                queue,
            ),
        )
        for c in range(clients)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get()
    began = time.perf_counter()
    go.set()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - began
    return sum(r[0] for r in results) / elapsed


def _mqtt_publisher(
    host: str,
    port: int,
    user: str,
    key: str,
    datastreams: list[int],
    per_second: float,
    seconds: float,
    offset: int,
    out: Any,
) -> None:
    """One load generator standing for many devices: Observations (QoS 0) written in batches
    of 1,000 with CIM's own small MQTT client (paho's 35 µs a publish would make the
    generator, not the service, the limit), at most `per_second` (0: as fast as it can), for
    `seconds`; reports how many it sent."""
    from twin.wire import Wire

    wire = Wire(host, port, f"bench-{offset}", (user, key))
    wire.connect()
    t0 = DAY + timedelta(days=40 + offset)
    began = time.perf_counter()
    sent = 0
    while True:
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            break
        if per_second and sent > elapsed * per_second:
            time.sleep(0.01)
            continue
        batch = []
        for i in range(sent, sent + 1000):
            ds = datastreams[i % len(datastreams)]
            when = (t0 + timedelta(milliseconds=i)).isoformat()
            batch.append(
                (
                    f"v1.1/Datastreams({ds})/Observations",
                    b'{"result": %d.5, "phenomenonTime": "%s"}' % (i % 100, when.encode()),
                )
            )
        wire.publish(batch)
        sent += len(batch)
    wire.close()
    out.put(sent)


def stored_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM twin_observation")).scalar_one())


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (cim serve's workers), in MB."""
    import psutil

    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def mqtt_rate(
    engine: Engine,
    broker: Any,
    user: str,
    key: str,
    datastreams: list[int],
    devices: int,
    seconds: float,
    per_second: float,
    server: Any,
) -> tuple[float, float, list[float]]:
    """Observations stored per second from devices over MQTT, end to end: from the first
    publish until the last is in PostgreSQL; and the serving process's memory meanwhile."""
    from urllib.parse import urlsplit

    where = urlsplit(broker.device_url)
    before = stored_count(engine)
    queue: Any = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=_mqtt_publisher,
            args=(
                where.hostname,
                where.port,
                user,
                key,
                datastreams[d::devices],
                per_second / devices if per_second else 0,
                seconds,
                d,
                queue,
            ),
        )
        for d in range(devices)
    ]
    began = time.perf_counter()
    for p in procs:
        p.start()
    memory = []
    while any(p.is_alive() for p in procs) and queue.qsize() < devices:
        memory.append(rss_mb(server.pid))
        time.sleep(min(30.0, max(1.0, seconds / 20)))
    acked = sum(queue.get() for _ in procs)  # sent
    for p in procs:
        p.join()
    # until everything acknowledged is stored (or nothing more arrives for 10 s)
    last, still = stored_count(engine) - before, time.perf_counter()
    while last < acked and time.perf_counter() - still < 10:
        time.sleep(0.1)
        now = stored_count(engine) - before
        if now != last:
            last, still = now, time.perf_counter()
    elapsed = (still if last < acked else time.perf_counter()) - began
    memory.append(rss_mb(server.pid))
    return last / elapsed, acked - last, memory


def timed_gets(base: str, urls: list[str], rounds: int) -> list[float]:
    http = httpx.Client(base_url=base, timeout=60)
    for url in urls[:3]:
        http.get(url).raise_for_status()  # warm
    times = []
    for i in range(rounds):
        url = urls[i % len(urls)]
        began = time.perf_counter()
        http.get(url).raise_for_status()
        times.append(time.perf_counter() - began)
    return times


def serve(
    url: str, port: int, env: dict[str, str], workers: int, log: Path
) -> subprocess.Popen[bytes]:
    """`cim serve` with its log in `log` (read it when a figure looks wrong)."""
    cim = str(Path(sys.executable).parent / "cim")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [cim, "serve", "--port", str(port), "--workers", str(workers)],
            env={**env, "CIM_DATABASE_URL": url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1.1", timeout=1).raise_for_status()
            return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    sys.exit("cim serve did not start")


PARTS = ("http", "reads", "mqtt", "long")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datastreams", type=int, default=10_000)
    parser.add_argument("--stored", type=int, default=10_000_000, help="history to read from")
    parser.add_argument("--workers", type=int, default=2, help="cim serve --workers (one per core)")
    parser.add_argument("--http-clients", type=int, default=2)
    parser.add_argument("--http-rows", type=int, default=10_000, help="rows per request")
    parser.add_argument("--http-requests", type=int, default=10, help="per client")
    parser.add_argument(
        "--mqtt-offer",
        type=float,
        default=25_000.0,
        help="Observations/s the devices publish in the 30-s MQTT run (above the target, so "
        "that what is stored shows what the service can take)",
    )
    parser.add_argument("--mqtt-minutes", type=float, default=10.0, help="the long run")
    parser.add_argument(
        "--mqtt-steady",
        type=float,
        default=5000.0,
        help="Observations/s of the long run (a city's sensors, not a flood)",
    )
    parser.add_argument("--mqtt-devices", type=int, default=4, help="publishing processes")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"which to run, of {', '.join(PARTS)}"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"--parts: unknown {', '.join(sorted(parts - set(PARTS)))}")
    figures: dict[str, str] = {}
    with bench_database() as url:
        engine = make_engine(url)
        began = time.perf_counter()
        datastreams = make_datastreams(engine, args.datastreams)
        print(
            f"{len(datastreams):,} Datastreams in {time.perf_counter() - began:.1f} s", flush=True
        )
        seconds = fill_history(engine, datastreams, args.stored)
        count, per = bytes_per_observation(engine)
        print(f"{count:,} Observations of history in {seconds:.0f} s", flush=True)
        figures["bytes per stored Observation (heap + indexes)"] = f"{per:.0f}"
        _, key = create_key(engine, "bench", "manager")
        port = _free_port()
        data = Path(tempfile.mkdtemp(prefix="cim-bench-twin-"))
        env = {
            **os.environ,
            "CIM_DATA_DIR": str(data),
            "CIM_MQTT_PORT": str(_free_port()),
            "CIM_MQTT_DEVICE_PORT": str(_free_port()),
        }
        from twin.access import sync_broker
        from twin.broker import LocalBroker

        broker = LocalBroker(
            data / "mqtt", int(env["CIM_MQTT_PORT"]), int(env["CIM_MQTT_DEVICE_PORT"])
        )
        data.chmod(0o755)
        broker.start()
        key_id, key_secret = create_key(engine, "bench devices", "manager")
        sync_broker(engine, broker)
        server = serve(url, port, env, args.workers, data / "serve.log")
        print(f"cim serve --workers {args.workers}: its log is {data / 'serve.log'}", flush=True)
        base = f"http://127.0.0.1:{port}"
        try:
            figures["machine gauge, ms (lower is faster)"] = f"{gauge_ms():.0f}"
            if "http" in parts:
                rates = [
                    http_rate(
                        base,
                        key,
                        datastreams,
                        args.http_clients,
                        args.http_rows,
                        args.http_requests,
                        round_,
                    )
                    for round_ in range(3)
                ]
                figures["HTTP Data Array, Observations/s (median of 3)"] = (
                    f"{statistics.median(rates):,.0f}  ({', '.join(f'{r:,.0f}' for r in rates)})"
                )
            if "reads" in parts:
                figures.update(reads(base, datastreams))
            devices_publish = functools.partial(  # (seconds, Observations/s offered)
                mqtt_rate,
                engine,
                broker,
                key_id,
                key_secret,
                datastreams,
                args.mqtt_devices,
                server=server,
            )
            if "mqtt" in parts:
                rate, lost, _ = devices_publish(30, args.mqtt_offer)
                offered = f"{args.mqtt_offer:,.0f}/s offered"
                figures[f"MQTT end to end, Observations/s stored (30 s, {offered})"] = (
                    f"{rate:,.0f}  (published, not stored: {lost:,})"
                )
            if "long" in parts and args.mqtt_minutes:
                rate, lost, memory = devices_publish(args.mqtt_minutes * 60, args.mqtt_steady)
                third = max(1, len(memory) // 3)
                figures[f"MQTT for {args.mqtt_minutes:g} min at {args.mqtt_steady:,.0f}/s"] = (
                    f"{rate:,.0f}/s stored, not stored: {lost:,}"
                )
                figures["  serving memory: first third / last third, MB"] = (
                    f"{statistics.median(memory[:third]):.0f} / "
                    f"{statistics.median(memory[-third:]):.0f} (max {max(memory):.0f})"
                )
            count, per = bytes_per_observation(engine)
            figures["Observations stored in all"] = f"{count:,}"
        finally:
            server.terminate()
            server.wait(timeout=30)
            broker.stop()
    print("\nThe live twin, 2-core machine")
    for name, value in figures.items():
        print(f"  {name:<50} {value}")


def reads(base: str, datastreams: list[int]) -> dict[str, str]:
    """The read figures: a day of one Datastream, the latest values of all of them."""
    figures = {}
    day = (
        f"/v1.1/Datastreams({{}})/Observations?$filter=phenomenonTime ge "
        f"{DAY.isoformat()} and phenomenonTime lt "
        f"{(DAY + timedelta(days=1)).isoformat()}"
        "&$top=2000&$resultFormat=dataArray&$select=phenomenonTime,result"
    )
    urls = [day.format(ds).replace("+00:00", "Z") for ds in datastreams[::97]]
    times = timed_gets(base, urls, 200)
    figures["one Datastream's day, p50 / p95 ms"] = (
        f"{_ms(times, 0.5):.1f} / {_ms(times, 0.95):.1f}"
    )
    latest = (
        "/v1.1/Datastreams?$top=10000&$select=id"
        "&$expand=Observations($top=1;$orderby=phenomenonTime desc;"
        "$select=phenomenonTime,result)"
    )
    times = timed_gets(base, [latest], 30)
    figures["latest of 10,000 Datastreams, SensorThings $expand, p50 / p95 ms"] = (
        f"{_ms(times, 0.5):.0f} / {_ms(times, 0.95):.0f}"
    )
    times = timed_gets(base, ["/twin/bench/latest"], 50)
    figures["latest of 10,000 Datastreams, /twin/{city}/latest, p50 / p95 ms"] = (
        f"{_ms(times, 0.5):.0f} / {_ms(times, 0.95):.0f}"
    )
    times = timed_gets(base, ["/twin/bench/sensors"], 50)
    figures["sensors of 10,000 Datastreams, /twin/{city}/sensors, p50 / p95 ms"] = (
        f"{_ms(times, 0.5):.0f} / {_ms(times, 0.95):.0f}"
    )
    return figures


if __name__ == "__main__":
    main()
