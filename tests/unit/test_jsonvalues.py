"""`cim.jsonvalues.loads` reads JSON as the standard library does, every integer exact: orjson
where it is exact, the standard library where a number could be an integer beyond 64 bits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cim import jsonvalues

_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_VALUES)
def test_any_value_reads_back_as_the_standard_library_reads_it(value: Any) -> None:
    text = json.dumps(value)
    assert jsonvalues.loads(text) == json.loads(text)
    assert jsonvalues.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 123456789012345678901234567890, -(10**40)])
def test_integers_beyond_64_bits_stay_integers(number: int) -> None:
    value = jsonvalues.loads(f'{{"big": {number}, "list": [{number}]}}')
    assert value == {"big": number, "list": [number]}
    assert type(value["big"]) is int


def test_what_is_not_json_is_refused_by_either_reader() -> None:
    for text in ("{", '{"a": 1,}', "[1] x", '{"big": 12345678901234567890'):
        with pytest.raises(jsonvalues.JSONDecodeError):
            jsonvalues.loads(text)


@given(_VALUES)
def test_any_value_is_written_as_it_reads_back(value: Any) -> None:
    assert json.loads(jsonvalues.dumps(value)) == value


def test_a_document_with_a_long_integer_is_written_whole() -> None:
    when = datetime(2026, 12, 3, 8, 0, 0, 500000, tzinfo=UTC)
    text = jsonvalues.dumps({"big": 2**64, "name": "测站", "at": when, "x": 1.5})
    assert text == orjson.dumps({"big": 0, "name": "测站", "at": when, "x": 1.5}).replace(
        b'"big":0', b'"big":18446744073709551616'
    )
    with pytest.raises(TypeError):
        jsonvalues.dumps({"big": 2**64, "what": object()})
