"""The streaming layout scan finds members and entries exactly, whatever the chunk size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.jsonscan import DocumentLayout, LayoutError, scan_layout

DOC = (
    '{"a": 1, "CityObjects": {"x\\\\": {"q": "}\\"{[", "n": [1, {"b": 2}]}, '
    '"y\\"z": {}, "w": {"s": "\\\\\\""}}, "vertices": [[1, 2, 3], [4, 5, 6]], "t": "]}"}'
)


def _scan(text: str, chunk: int, tmp_path: Path) -> tuple[bytes, DocumentLayout]:
    path = tmp_path / "doc.json"
    path.write_text(text)
    with open(path, "rb") as f:
        return text.encode(), scan_layout(f, "CityObjects", chunk)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 16, 64, 1 << 20])
def test_members_and_entries(chunk: int, tmp_path: Path) -> None:
    raw, layout = _scan(DOC, chunk, tmp_path)
    assert set(layout.members) == {"a", "CityObjects", "vertices", "t"}
    parsed = json.loads(DOC)
    for key, (a, b) in layout.members.items():
        assert json.loads(raw[a:b]) == parsed[key]
    seps = layout.entry_separators
    entries = [
        json.loads(b"{" + raw[seps[i] + 1 : seps[i + 1]] + b"}") for i in range(layout.entry_count)
    ]
    assert entries == [{k: v} for k, v in parsed["CityObjects"].items()]


@pytest.mark.parametrize(
    "text,problem",
    [
        ('{"CityObjects": {"a": {}}', "truncated"),
        ('{"CityObjects": {"a": "}', "truncated"),
        ("[1, 2]", "not a JSON object"),
        ('{"a": 1}}', "unbalanced"),
        ('{"a": 1} {"b": 2}', "after the end"),
        ("   ", "empty"),
    ],
)
def test_broken_documents(text: str, problem: str, tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match=problem):
        _scan(text, 4, tmp_path)
