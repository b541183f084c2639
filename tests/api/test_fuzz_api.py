"""The API fuzzed against its own OpenAPI document (schemathesis): every operation, with data the
schema allows and data it does not, on a database holding a city and a grading round. No
response may be a 5xx, every response must match its declared schema and status codes, every
4xx is problem+json, and the security the document declares must hold (a bad key is refused, a
write without a key too). Bounded here (25 examples per operation, derandomized); longer runs:
`python bench/fuzz_api.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from sqlalchemy import Engine

from api.app import create_app
from cim.settings import ApiSettings
from grading import access, rounds
from grading.awards import built_in_policy
from grading.catalogue import built_in
from ingest.pipeline import ingest_files
from tests.conftest import shared

DELFT = shared("cityjson/delft_mixed_objects_v2.0/delft.city.json")
EXAMPLES = 25


@pytest.fixture(scope="module")
def api_schema(new_database: Callable[[], Engine]) -> Any:
    engine = new_database()
    ingest_files(engine, [DELFT], "delft")
    rounds.create_round(
        engine,
        access.cli_actor(),
        "fuzz-2026",
        "Fuzz",
        2026,
        built_in("db37-3890.1-2020"),
        built_in_policy("shandong-example"),
        [rounds.CityEntry("370100", "济南市", "Jinan")],
    )
    # enough failed authentications allowed for the fuzzer's bad keys (the limit is tested apart)
    app = create_app(engine=engine, settings=ApiSettings(auth_failures=1_000_000))
    _, key = access.create_key(engine, access.cli_actor(), "fuzzer", "admin")
    schema = schemathesis.openapi.from_asgi("/api", app)
    # no NUL in generated text: the API refuses it anywhere (400; tests/api/test_bad_input_4xx.py),
    # which a JSON Schema string cannot say, so a schema-valid body may rightly be refused for it
    schema.config.generation.update(allow_x00=False)
    return schema, key


# bodies whose meaning is checked beyond what a JSON Schema can say: a schema-valid body may
# rightly get 400 there (a policy's amounts keyed by star level, a catalogue's thresholds
# increasing, a CRS that EPSG knows, a spreadsheet whose columns and rows make sense, a
# boundary file of polygons, an analysis's inputs)
MEANING_CHECKED = {
    "/grading/rounds",
    "/grading/rounds/{round_id}/policy",
    "/grading/rounds/{round_id}/what-if",
    "/grading/rounds/{round_id}/cities/{city}/cim-indicators",
    "/grading/rounds/{round_id}/imports",
    "/grading/rounds/{round_id}/cities/{city}/area",
    "/processes/{process_id}/execution",  # each process's inputs (analysis.processes)
}


def _one_documented_clash(case: Any) -> bool:
    """Parameters valid one by one whose combination the description refuses (400), which an
    OpenAPI schema cannot say: implicit tiling asked of 3D Tiles 1.0."""
    query = case.query or {}
    implicit = str(query.get("implicit", "")).lower() in ("true", "1")
    return (
        case.operation.path.endswith("/tileset.json")
        and implicit
        and (query.get("version") == "1.0")
    )


def _check(case: Any, headers: dict[str, str] | None = None) -> None:
    meaning = case.operation.path in MEANING_CHECKED and case.method.upper() != "GET"
    meaning = meaning or _one_documented_clash(case)
    excluded = [positive_data_acceptance] if meaning else []
    response = case.call_and_validate(headers=headers, excluded_checks=excluded)
    assert response.status_code < 500
    if 400 <= response.status_code < 500:
        media = response.headers["content-type"][0]
        if case.operation.path.startswith("/v1.1"):  # SensorThings' own error shape
            assert media.startswith(("application/json", "application/problem+json"))
            if media.startswith("application/json"):
                assert response.json()["type"] == "error"
        else:
            assert media.startswith("application/problem+json")


def test_every_operation_keeps_its_contract(api_schema: Any) -> None:
    schema, key = api_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35  # every operation of the document, not a few
    for operation in operations:
        # anonymous (or with the keys the fuzzer makes up), then with an admin key, so that
        # writes get past the guard too
        for headers in (None, {"Authorization": f"Bearer {key}"}):

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
                database=None,
            )
            def fuzz(case: Any) -> None:
                _check(case, headers)  # noqa: B023 (run right here, in this iteration)

            try:
                fuzz()
            except Exception as exc:
                name = f"{operation.method.upper()} {operation.path}"
                raise AssertionError(f"{name} ({'admin' if headers else 'no key'}): {exc}") from exc
