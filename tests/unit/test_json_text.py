"""The NUL and lone-surrogate check of JSON bodies (`api.edge`) reads escapes in the raw bytes
instead of parsing the body; it must say what parsing and walking the document would say."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from api.edge import _bad_text


def _parsed_bad(doc: Any) -> bool:
    """The reference: parse, then look at every key and string."""
    if isinstance(doc, dict):
        return any(_parsed_bad(k) or _parsed_bad(v) for k, v in doc.items())
    if isinstance(doc, list):
        return any(_parsed_bad(v) for v in doc)
    if isinstance(doc, str):
        try:
            doc.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return "\x00" in doc
    return False


CASES = [
    r'{"a": "x\u0000"}',
    r'{"a": "x\\u0000"}',  # a backslash, then u0000
    r'{"a": "x\\\u0000"}',  # a backslash, then a NUL
    r'{"a": "\ud83d\ude00"}',  # a pair: one emoji
    r'{"a": "\uD83D\uDE00"}',
    r'{"a": "\ud83d"}',
    r'{"a": "\ude00"}',
    r'{"a": "d83d\ude00"}',  # text that looks like a high surrogate, then a low one
    r'{"a": "\\ud83d\ude00"}',
    r'{"a": "\ud83d\ud83d\ude00"}',
    r'{"a": "\ud83d\ude00\ude00"}',
    r'{"\u0000": 1}',
    r'{"a": ["\u4e2d\u6587", "\ud7ff", "\ue000"]}',
]


def test_handmade_cases_agree_with_parsing() -> None:
    verdicts = [(_bad_text(c.encode()) is not None, _parsed_bad(json.loads(c))) for c in CASES]
    assert all(fast == slow for fast, slow in verdicts), list(zip(CASES, verdicts, strict=True))
    assert sum(slow for _, slow in verdicts) == 9  # the cases hold both kinds


# characters that make escapes interesting: backslashes, NUL, both halves of surrogates
TEXT = st.text(
    alphabet=st.sampled_from(["\\", "u", "d", "8", "0", "c", "\x00", "\ud83d", "\ude00", "中"]),
    max_size=12,
)


@given(st.dictionaries(TEXT, st.lists(TEXT, max_size=3), max_size=3))
def test_any_document_agrees_with_parsing(doc: dict[str, list[str]]) -> None:
    raw = json.dumps(doc).encode()  # ensure_ascii: every NUL and surrogate as an escape
    assert (_bad_text(raw) is not None) == _parsed_bad(json.loads(raw))
