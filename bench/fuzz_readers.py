"""Longer reader fuzzing than the test suite's: every input format's real file from ../shared/data,
mutated by hypothesis (byte edits, truncations) and ingested into a fresh database. Prints per
format the examples tried, how many landed whole and how many were refused with CIM's own error,
anything else (a defect), the slowest example and the process's peak memory. Not a test.

    python bench/fuzz_readers.py --examples 300
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import bench_database  # noqa: E402


def _fuzzer(
    engine: Any,
    tmp: Path,
    source: str,
    path: Path,
    crs: str | None,
    options: Any,
    examples: int,
    counts: dict[str, Any],
    defects: list[str],
) -> Any:
    """A hypothesis test that ingests mutations of one format's file and counts the outcomes."""
    from hypothesis import HealthCheck, given, settings

    from cim.errors import CimError
    from ingest.pipeline import ingest_files
    from tests.ingest.test_hostile_corpus import mutations

    @given(data=mutations(path.read_bytes(), 32))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(data: bytes) -> None:
        broken = tmp / f"fuzz{path.suffix}"
        broken.write_bytes(data)
        started = time.perf_counter()
        try:
            ingest_files(engine, [broken], "fuzz", crs=crs, options=options)
            counts["landed"] += 1
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM dataset WHERE city_code = 'fuzz'")
        except CimError:
            counts["refused"] += 1
        except Exception as exc:  # a defect: reported, the run goes on
            counts["other"] += 1
            defects.append(f"{source}: {type(exc).__name__}: {exc}"[:300])
        counts["slowest"] = max(counts["slowest"], time.perf_counter() - started)

    return fuzz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="per format")
    args = parser.parse_args()

    from cim.db.engine import make_engine
    from tests.ingest.test_hostile_corpus import SOURCES

    with bench_database() as url, tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(url)
        print(
            f"{'format':<12} {'examples':>8} {'landed':>7} {'refused':>8} {'other':>6} "
            f"{'slowest s':>10}"
        )
        defects: list[str] = []
        for source, (path, crs, options) in SOURCES.items():
            counts = {"landed": 0, "refused": 0, "other": 0, "slowest": 0.0}
            _fuzzer(engine, Path(tmp), source, path, crs, options, args.examples, counts, defects)()
            tried = counts["landed"] + counts["refused"] + counts["other"]
            print(
                f"{source:<12} {tried:>8} {counts['landed']:>7} {counts['refused']:>8} "
                f"{counts['other']:>6} {counts['slowest']:>10.2f}"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak memory {peak:.0f} MB; {len(defects)} examples ended in another exception")
        for defect in defects[:20]:
            print(f"    {defect}")


if __name__ == "__main__":
    main()
