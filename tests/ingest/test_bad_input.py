"""Bad input ends with a clear message naming the file (and object), a non-zero exit code, and
the database exactly as it was. Cases are made from the real 3DBAG file."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from cli.main import main
from tests.conftest import SHARED

GOOD = SHARED / "cityjson/3dbag_2buildings_v2.0/3dbag_b2.city.json"
GOOD_SEQ = SHARED / "cityjsonseq/3dbag_2buildings/3dbag_b2.city.jsonl"
FIRST = "NL.IMBAG.Pand.0503100000028341-0"


def _doc() -> dict:
    return json.loads(GOOD.read_text())


def _write(tmp: Path, name: str, content: bytes | str | dict) -> Path:
    path = tmp / name
    if isinstance(content, dict):
        content = json.dumps(content)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _mutated(change: Callable[[dict], None]) -> dict:
    doc = copy.deepcopy(_doc())
    change(doc)
    return doc


def _first_geometry(doc: dict) -> dict:
    return next(o for o in doc["CityObjects"].values() if o.get("geometry"))["geometry"][0]


def _set(path: list, value: object) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _seq_lines() -> list[str]:
    return GOOD_SEQ.read_text().splitlines()


# name -> (file name, content builder, extra CLI args, words the message must contain)
CASES: dict[str, tuple[str, Callable[[], bytes | str | dict], list[str], list[str]]] = {
    "truncated": (
        "t.city.json",
        lambda: GOOD.read_bytes()[: len(GOOD.read_bytes()) // 2],
        [],
        ["truncated"],
    ),
    "unknown version": (
        "v.city.json",
        lambda: _mutated(_set(["version"], "3.0")),
        [],
        ["unsupported CityJSON version", "3.0"],
    ),
    "vertex index out of range": (
        "i.city.json",
        lambda: _mutated(lambda d: _first_geometry(d)["boundaries"][0][0][0].__setitem__(0, 10**6)),
        [],
        ["out of range", "1000000", FIRST],
    ),
    "negative vertex index": (
        "n.city.json",
        lambda: _mutated(lambda d: _first_geometry(d)["boundaries"][0][0][0].__setitem__(0, -3)),
        [],
        ["out of range", "-3", FIRST],
    ),
    "missing CRS": (
        "c.city.json",
        lambda: _mutated(lambda d: d["metadata"].pop("referenceSystem")),
        [],
        ["declares no CRS", "--crs"],
    ),
    "unknown EPSG code": (
        "e.city.json",
        lambda: _mutated(
            _set(["metadata", "referenceSystem"], "https://www.opengis.net/def/crs/EPSG/0/999999")
        ),
        [],
        ["unknown CRS", "999999"],
    ),
    "unknown --crs": (
        "k.city.json",
        lambda: _mutated(lambda d: d["metadata"].pop("referenceSystem")),
        ["--crs", "EPSG:12345678"],
        ["unknown CRS"],
    ),
    "NaN coordinate": (
        "nan.city.json",
        lambda: (
            GOOD.read_text()
            .replace('"vertices":[[', '"vertices":[[NaN,', 1)
            .replace('"vertices": [[', '"vertices": [[NaN,', 1)
        ),
        [],
        ["vertices"],
    ),
    "absurd coordinate": (
        "a.city.json",
        lambda: _mutated(lambda d: d["vertices"].__setitem__(0, [10**17, 0, 0])),
        [],
        ["absurd coordinate", "object 'NL.IMBAG.Pand."],
    ),
    "off the Earth": (
        "o.city.json",
        lambda: _mutated(
            lambda d: (
                d["metadata"].__setitem__(
                    "referenceSystem", "https://www.opengis.net/def/crs/EPSG/0/4326"
                ),
                d.__setitem__("transform", {"scale": [1, 1, 1], "translate": [0, 0, 0]}),
                d["vertices"].__setitem__(0, [5, 120, 0]),
            )
        ),
        [],
        ["cannot be placed on Earth", FIRST],
    ),
    "empty file": ("empty.city.json", lambda: b"", [], ["empty"]),
    "whitespace only": ("ws.city.json", lambda: b"  \n\n ", [], ["empty"]),
    "attributes of wrong type": (
        "w.city.json",
        lambda: _mutated(lambda d: d["CityObjects"][FIRST].__setitem__("attributes", [1, 2])),
        [],
        ["'attributes' must be a JSON object", FIRST],
    ),
    "geometry of wrong type": (
        "g.city.json",
        lambda: _mutated(
            lambda d: d["CityObjects"][FIRST].__setitem__("geometry", {"type": "Solid"})
        ),
        [],
        ["'geometry' must be an array", FIRST],
    ),
    "wrong nesting": (
        "nest.city.json",
        lambda: _mutated(lambda d: _first_geometry(d).__setitem__("type", "MultiSolid")),
        [],
        ["geometry 0", FIRST],
    ),
    "unknown geometry type": (
        "ug.city.json",
        lambda: _mutated(lambda d: _first_geometry(d).__setitem__("type", "Blob")),
        [],
        ["unknown geometry type", FIRST],
    ),
    "unknown object type": (
        "ot.city.json",
        lambda: _mutated(lambda d: d["CityObjects"][FIRST].__setitem__("type", "Spaceship")),
        [],
        ["unknown city object type", "Spaceship", FIRST],
    ),
    "semantics do not match": (
        "s.city.json",
        lambda: _mutated(lambda d: _first_geometry(d)["semantics"].__setitem__("values", [[0]])),
        [],
        ["semantic 'values' cover", FIRST],
    ),
    "missing transform in 2.0": (
        "tr.city.json",
        lambda: _mutated(lambda d: d.pop("transform")),
        [],
        ["requires a 'transform'"],
    ),
    "duplicate ids": (
        "dup.city.jsonl",
        lambda: "\n".join(_seq_lines() + _seq_lines()[1:2]) + "\n",
        [],
        ["duplicate city object id"],
    ),
    "line longer than the limit": (
        "long.city.jsonl",
        lambda: (
            "\n".join(
                [
                    _seq_lines()[0],
                    _seq_lines()[1].replace(
                        '"attributes":{', '"attributes":{"pad":"' + "x" * 50000 + '",', 1
                    ),
                ]
            )
            + "\n"
        ),
        [],
        ["longer than the limit"],
    ),
    "not a CityJSONFeature": (
        "nf.city.jsonl",
        lambda: (
            "\n".join([_seq_lines()[0], json.dumps({"type": "Feature", "geometry": None})]) + "\n"
        ),
        [],
        ["line 2", "CityJSONFeature"],
    ),
    "GeoJSON of points is not a footprint layer": (
        "x.geojson",
        lambda: {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"h": 3},
                    "geometry": {"type": "Point", "coordinates": [1, 2]},
                }
            ],
        },
        [],
        ["no feature has a polygon", "not a footprint layer"],
    ),
    "binary garbage": ("b.city.json", lambda: bytes(range(256)) * 10, [], ["unrecognised format"]),
    "CityObjects is an array": (
        "arr.city.json",
        lambda: _mutated(_set(["CityObjects"], [])),
        [],
        ["'CityObjects' must be a JSON object"],
    ),
    "trailing garbage": ("tg.city.json", lambda: GOOD.read_text() + "}{", [], ["not valid JSON"]),
    "deep nesting": (
        "deep.city.json",
        lambda: GOOD.read_text().replace(
            '"attributes":{}', '"attributes":{"x":' + "[" * 100_000 + "]" * 100_000 + "}", 1
        ),
        [],
        ["not valid JSON"],
    ),
    "NUL in an attribute": (
        "nul.city.json",
        lambda: _mutated(
            lambda d: d["CityObjects"][FIRST]["attributes"].__setitem__("name", "a\u0000b")
        ),
        [],
        ["NUL", FIRST],
    ),
    "template that does not exist": (
        "tpl.city.json",
        lambda: _mutated(
            lambda d: d["CityObjects"][FIRST].__setitem__(
                "geometry",
                [
                    {
                        "type": "GeometryInstance",
                        "template": 3,
                        "boundaries": [0],
                        "transformationMatrix": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
                    }
                ],
            )
        ),
        [],
        ["geometry-templates", FIRST],
    ),
    "no such file": ("missing.city.json", lambda: "", ["--name", "x"], ["no such file"]),
    "bad city code": (
        "ok.city.json",
        lambda: GOOD.read_text(),
        ["--city", "bad city!"],
        ["city code"],
    ),
}


def _counts(engine: Engine) -> tuple[int, ...]:
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()  # noqa: S608
            for t in ("city", "dataset", "city_object", "object_geometry")
        )


def test_there_are_at_least_twenty_kinds() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_cleanly(
    case: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, build, args, words = CASES[case]
    url = engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("CIM_DATABASE_URL", url)
    monkeypatch.setenv("CIM_INGEST_MAX_LINE_BYTES", "20000")
    runner = CliRunner()
    # a good dataset already in the city, under the same dataset name: it must survive
    first = runner.invoke(main, ["ingest", str(GOOD), "--city", "c1", "--name", name])
    assert first.exit_code == 0, first.output
    before = _counts(engine)
    path = _write(tmp_path, name, build())
    if case == "no such file":
        path.unlink()
    city = [] if "--city" in args else ["--city", "c1"]
    result = runner.invoke(
        main,
        ["ingest", str(path), *city, *args, "--name", name]
        if "--name" not in args
        else ["ingest", str(path), *city, *args],
    )
    assert result.exit_code != 0
    message = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "error:" in message and "Traceback" not in message
    if case not in ("bad city code",):
        assert str(path) in message, message
    for word in words:
        assert word in message, message
    assert _counts(engine) == before
