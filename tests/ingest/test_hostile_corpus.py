"""Hostile and broken input, for every input format: a corpus of more than 50 broken files made
here from the real files of ../shared/data (truncations, byte flips, zeroed blocks, wrong
encodings, garbage before the data, deep nesting, huge strings, absurd numbers, wrong types),
and hypothesis-driven mutations of each format for a bounded number of examples. Every case
either lands whole (a mutation may leave a valid file) or ends in CIM's own error type with a
message that names the file; never another exception, never a hang (pytest-timeout); the
database holds nothing of a refused file; and the process's memory stays bounded."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from cim.errors import CimError
from ingest.model import ReadOptions
from ingest.pipeline import ingest_files
from tests.conftest import SHARED

LYON = (4.8359, 45.7640, 170.0)
SOURCES: dict[str, tuple[Path, str | None, ReadOptions | None]] = {
    "cityjson": (SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json", None, None),
    "cityjsonseq": (SHARED / "cityjsonseq/3dbag_2buildings/3dbag_b2.city.jsonl", None, None),
    "citygml2": (
        SHARED / "citygml2/lyon_1er_small_house_textured/LYON_1ER_BATI_2015_small_house.gml",
        "EPSG:3946",
        None,
    ),
    "citygml3": (SHARED / "citygml3/berlin_moabit_1bldg/Berlin_Moabit_1Bldg_v3.gml", None, None),
    "geojson": (
        SHARED / "footprints/korea_mago_footprints/footprint-with-height.geojson",
        None,
        ReadOptions(height_attr="height"),
    ),
    "gpkg": (SHARED / "footprints/korea_mago_footprints/footprint.gpkg", None, None),
    "obj": (SHARED / "mesh/lyon_obj/palais_de_justice.obj", None, ReadOptions(origin=LYON)),
    "glb": (SHARED / "mesh/kit_railway_glb/railway.glb", None, ReadOptions(origin=LYON)),
    "las": (
        SHARED / "pointcloud/lyon_lidar_dense_vegetation/ExampleDataDenseVegetation.las",
        None,
        None,
    ),
}
TEXT = {"cityjson", "cityjsonseq", "citygml2", "citygml3", "geojson", "obj"}
MEMORY_LIMIT = 3 * 1024**3  # bytes of resident memory the whole corpus may reach


def mutations(original: bytes, max_edits: int) -> st.SearchStrategy[bytes]:
    """Files made from `original` by up to `max_edits` byte edits and, maybe, a cut."""

    def mutated(edits: list[tuple[int, int]], cut: int | None) -> bytes:
        data = bytearray(original)
        for at, value in edits:
            data[at] = value
        return bytes(data[:cut] if cut is not None else data)

    edit = st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255))
    return st.builds(
        mutated,
        st.lists(edit, max_size=max_edits),
        st.one_of(st.none(), st.integers(0, len(original))),
    )


def _flips(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(16):
        at = rng.randrange(len(out) // 4, len(out))
        out[at] ^= 0xFF
    return bytes(out)


def _zeroed(data: bytes) -> bytes:
    at = len(data) // 3
    return data[:at] + b"\0" * min(4096, len(data) - at) + data[at + 4096 :]


GENERIC: dict[str, Callable[[bytes], bytes]] = {
    "truncated-half": lambda d: d[: len(d) // 2],
    "truncated-64": lambda d: d[:64],
    "byte-flips": lambda d: _flips(d, 7),
    "zeroed-block": _zeroed,
    "garbage-first": lambda d: b"\x00\xff\xfe" * 200 + d,
    "doubled": lambda d: d + d,
}


def _json_cases(doc: dict) -> dict[str, bytes]:
    def changed(change: Callable[[dict], None]) -> bytes:
        d = json.loads(json.dumps(doc))
        change(d)
        return json.dumps(d).encode()

    first = next(iter(doc["CityObjects"]))
    return {
        "deep-nesting": changed(
            lambda d: d["CityObjects"][first].__setitem__("attributes", "DEEP")
        ).replace(b'"DEEP"', b"[" * 100_000 + b"]" * 100_000),
        "huge-string": changed(
            lambda d: (
                d["CityObjects"][first]
                .setdefault("attributes", {})
                .__setitem__("note", "城" * 5_000_000)
            )
        ),
        "absurd-numbers": changed(
            lambda d: d.__setitem__("vertices", [[1e308, -1e308, 1e308]] * len(d["vertices"]))
        ),
        "wrong-types": changed(lambda d: d.__setitem__("vertices", "not a list")),
        "objects-a-list": changed(lambda d: d.__setitem__("CityObjects", [1, 2, 3])),
        "nan-transform": json.dumps(doc).replace('"scale": [', '"scale": [NaN, ').encode(),
        # found by bench/fuzz_readers.py: a letter among the vertex numbers
        "letter-in-vertices": json.dumps(doc)
        .replace('"vertices": [[', '"vertices": [[7x', 1)
        .encode(),
    }


def _gml_cases(data: bytes) -> dict[str, bytes]:
    text_ = data.decode("utf-8")
    member = (
        text_.index("<core:cityObjectMember>")
        if "<core:cityObjectMember>" in text_
        else (text_.index("<cityObjectMember>"))
    )
    close = (
        "</core:cityObjectMember>"
        if "<core:cityObjectMember>" in text_
        else ("</cityObjectMember>")
    )
    return {
        "deep-nesting": (
            text_[:member]
            + "<core:cityObjectMember>"
            + "<x>" * 20000
            + "</x>" * 20000
            + close
            + text_[member:]
        ).encode(),
        "huge-string": text_.replace(
            "<gml:posList", "<!--" + "x" * 20_000_000 + "--><gml:posList", 1
        ).encode(),
        "absurd-numbers": __import__("re")
        .sub(
            r"(<gml:posList[^>]*>)[^<]*",
            r"\g<1>1e308 1e308 1e308 -1e308 1e308 1e308 1e308 -1e308 1e308",
            text_,
        )
        .encode(),
        "wrong-types": __import__("re")
        .sub(r"(<gml:posList[^>]*>)[^<]*", r"\g<1>north east up", text_)
        .encode(),
    }


def _corpus() -> dict[str, tuple[str, bytes]]:
    """Case name -> (source, the broken file's bytes)."""
    cases: dict[str, tuple[str, bytes]] = {}
    for source, (path, _, _) in SOURCES.items():
        data = path.read_bytes()
        for name, mutate in GENERIC.items():
            cases[f"{source}-{name}"] = (source, mutate(data))
        if source in TEXT:
            cases[f"{source}-utf16"] = (source, data.decode("utf-8", "replace").encode("utf-16"))
    for source in ("cityjson",):
        for name, data in _json_cases(json.loads(SOURCES[source][0].read_text())).items():
            cases[f"{source}-{name}"] = (source, data)
    for source in ("citygml2", "citygml3"):
        for name, data in _gml_cases(SOURCES[source][0].read_bytes()).items():
            cases[f"{source}-{name}"] = (source, data)
    return cases


CORPUS = _corpus()


@pytest.fixture(scope="module")
def db(new_database: Callable[[], Engine]) -> Engine:
    return new_database()


def _outcome(engine: Engine, path: Path, source: str) -> str:
    """Ingest a file; "landed" or "refused" (with the database checked after each)."""
    _, crs, options = SOURCES[source]
    try:
        ingest_files(engine, [path], "hostile", crs=crs, options=options)
    except CimError as exc:
        assert str(path) in str(exc) or path.name in str(exc), f"message names no file: {exc}"
        with engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM dataset WHERE city_code = 'hostile'),"
                    " (SELECT count(*) FROM city_object WHERE city_code = 'hostile')"
                )
            ).one()
        assert tuple(left) == (0, 0), "a refused file left rows behind"
        return "refused"
    with engine.begin() as conn:  # a mutation that kept the file valid: clean up
        conn.execute(text("DELETE FROM dataset WHERE city_code = 'hostile'"))
    return "landed"


def test_the_corpus_is_large_and_covers_every_format() -> None:
    assert len(CORPUS) >= 50
    assert {source for source, _ in CORPUS.values()} == set(SOURCES)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(CORPUS))
def test_broken_files_are_refused_cleanly(db: Engine, tmp_path: Path, case: str) -> None:
    source, data = CORPUS[case]
    path = tmp_path / f"{case}{SOURCES[source][0].suffix}"
    path.write_bytes(data)
    outcome = _outcome(db, path, source)
    # the cases that cannot be valid any more must be refused (an OBJ read as UTF-16 by its
    # byte-order mark is still the same mesh)
    broken = ("truncated-64", "wrong-types", "absurd-numbers", "utf16", "letter-in")
    if any(word in case for word in broken) and case != "obj-utf16":
        assert outcome == "refused", case
    assert psutil.Process().memory_info().rss < MEMORY_LIMIT


@pytest.mark.timeout(300)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_fuzzed_files_are_refused_cleanly(db: Engine, tmp_path: Path, source: str) -> None:
    original = SOURCES[source][0].read_bytes()

    @given(data=mutations(original, 12))
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(data: bytes) -> None:
        path = tmp_path / f"fuzz{SOURCES[source][0].suffix}"
        path.write_bytes(data)
        _outcome(db, path, source)

    fuzz()
    assert psutil.Process().memory_info().rss < MEMORY_LIMIT
