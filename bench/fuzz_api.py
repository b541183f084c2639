"""Longer API fuzzing than the test suite's: every operation of the service's OpenAPI document,
with schemathesis, on a fresh database holding the demo city and the demo grading round. Prints
per operation the examples tried (without a key, then with an admin key) and the failures found,
with the test suite's checks (no 5xx, responses as documented, problem+json for 4xx, declared
security enforced). Not a test: it passes or fails on nothing.

    python bench/fuzz_api.py --examples 500

With --hostile, instead: hostile bodies sent to `cim serve` (anonymous what-ifs of up to 2.4 MB,
anonymous and bad-key 51 MB JSON bodies), with /health timed meanwhile (median, p99):

    python bench/fuzz_api.py --hostile --seconds 20
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="per operation")
    parser.add_argument("--buildings", type=int, default=300, help="demo city size")
    parser.add_argument("--hostile", action="store_true", help="hostile bodies instead")
    parser.add_argument("--seconds", type=float, default=20.0, help="--hostile: per case")
    parser.add_argument("--workers", type=int, default=1, help="--hostile: server processes")
    args = parser.parse_args()
    if args.hostile:
        hostile(args)
        return

    import schemathesis
    from hypothesis import HealthCheck, given, settings

    from api.app import create_app
    from cim.db.engine import make_engine
    from cim.settings import ApiSettings
    from demo.city import generate_city
    from demo.round import load_demo_round
    from grading import access
    from ingest.pipeline import ingest_files
    from tests.api.test_fuzz_api import _check as check

    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        city = generate_city(Path(tmp) / "demo.city.json", buildings=args.buildings, seed=7)
        ingest_files(engine, [city.path], "370100")
        load_demo_round(engine)
        app = create_app(engine=engine, settings=ApiSettings(auth_failures=10**9))
        _, key = access.create_key(engine, access.cli_actor(), "fuzzer", "admin")
        schema = schemathesis.openapi.from_asgi("/api", app)
        total_failures = 0
        started = time.perf_counter()
        print(f"{'operation':<70} {'examples':>8} {'failures':>8}")
        for result in schema.get_all_operations():
            operation = result.ok()
            tried = 0
            failures: list[str] = []

            @given(case=operation.as_strategy())
            @settings(
                max_examples=args.examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def fuzz(case: Any, headers: dict[str, str] | None) -> None:
                nonlocal tried
                tried += 1
                check(case, headers)  # the test suite's checks

            for headers in (None, {"Authorization": f"Bearer {key}"}):
                try:
                    fuzz(headers=headers)
                except Exception as exc:  # report and go on
                    failures.append(str(exc).splitlines()[0][:200])
            total_failures += len(failures)
            name = f"{operation.method.upper()} {operation.path}"
            print(f"{name:<70} {tried:>8} {len(failures):>8}")
            for failure in failures:
                print(f"    {failure}")
        print(
            f"\n{total_failures} failing operations, {time.perf_counter() - started:.0f} s, "
            f"{args.examples} examples per operation at most"
        )


def hostile(args: argparse.Namespace) -> None:
    """The hostile bodies of issue 13 against `cim serve` (drafts public, as `make run` serves
    them: the what-if is open to anonymous callers), /health timed during each case."""
    import asyncio

    from bench._hostile import (
        HEADER,
        MB,
        HealthProbe,
        idle,
        repeat,
        run_case,
        send_request,
        serving,
        what_if_bodies,
    )
    from cim.db.engine import make_engine
    from demo.city import generate_city
    from demo.round import DEMO_ROUND, load_demo_round
    from ingest.pipeline import ingest_files

    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        city = generate_city(Path(tmp) / "demo.city.json", buildings=args.buildings, seed=7)
        ingest_files(engine, [city.path], "370100")
        load_demo_round(engine)
        public = {"CIM_API_GRADING_PUBLIC_DRAFTS": "true"}
        with serving(url, args.workers, **public) as (base, pid), HealthProbe(base) as probe:
            bodies = what_if_bodies()
            for name, body in bodies:
                status, _ = asyncio.run(
                    send_request(base, "POST", f"/grading/rounds/{DEMO_ROUND}/what-if", body=body)
                )
                print(f"what-if {name}: {len(body):,} bytes -> {status}")
            print(f"\n{args.workers} server process(es), {os.cpu_count()} CPUs\n{HEADER}")
            run_case("at rest", probe, lambda: idle(3), pid)

            what_if = f"/grading/rounds/{DEMO_ROUND}/what-if"
            sent: list[int] = []

            def posting(chosen: list[bytes]) -> Any:
                async def one(k: int) -> str:
                    return (await send_request(base, "POST", what_if, body=chosen[k % 2]))[0]

                return lambda: repeat(args.seconds, 8, one)

            most, too_big, too_many = bodies[2][1], [bodies[0][1], bodies[1][1]], bodies[3][1]
            run_case("what-ifs at the limits, 8 clients", probe, posting([most, most]), pid)
            run_case("what-ifs of 2.4 MB and 650 kB, 8 clients", probe, posting(too_big), pid)
            run_case("what-ifs of 600 indicators, 8 clients", probe, posting([too_many] * 2), pid)
            policy = f"/grading/rounds/{DEMO_ROUND}/policy"

            def bodies_case(headers: dict[str, str], declared: bool) -> Any:
                async def one(k: int) -> str:
                    size = 51 * MB if declared else None
                    status, n = await send_request(
                        base, "PUT", policy, headers, chunks=51, declared=size
                    )
                    sent.append(n)
                    return status

                return lambda: repeat(args.seconds, 8, one)

            for name, headers, declared in (
                ("51 MB JSON bodies, no key, Content-Length", {}, True),
                ("51 MB JSON bodies, no key, chunked", {}, False),
                ("51 MB JSON bodies, bad key, chunked", {"X-API-Key": "cim_k_00000000_x"}, False),
            ):
                sent.clear()
                run_case(name + ", 8 clients", probe, bodies_case(headers, declared), pid)
                print(f"    most bytes a client had sent when answered: {max(sent) / MB:.1f} MB")


if __name__ == "__main__":
    main()
