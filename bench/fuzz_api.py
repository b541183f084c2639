"""Longer API fuzzing than the test suite's: every operation of the service's OpenAPI document,
with schemathesis, on a fresh database holding the demo city and the demo grading round. Prints
per operation the examples tried (without a key, then with an admin key) and the failures found,
with the test suite's checks (no 5xx, responses as documented, problem+json for 4xx, declared
security enforced). Not a test: it passes or fails on nothing.

    python bench/fuzz_api.py --examples 500
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
