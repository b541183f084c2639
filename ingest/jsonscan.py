"""The layout of a large JSON document, found in one streaming pass without parsing it.

A CityJSON file is one JSON object whose `CityObjects` and `vertices` members may be gigabytes.
This module finds, with vectorised byte scans over fixed-size chunks, where each top-level member's
value starts and ends and where each entry of one object-valued member (`CityObjects`) starts and
ends. Readers then parse one city object at a time and the vertex array in chunks, so memory stays
bounded whatever the file size.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import orjson

CHUNK = 8 << 20

# byte -> token kind: 1 { 2 [ 3 } 4 ] 5 , 6 : 7 " 8 backslash
_KIND = np.zeros(256, dtype=np.uint8)
for _ch, _k in zip(b'{[}],:"\\', range(1, 9), strict=True):
    _KIND[_ch] = _k
_OPEN = (1, 2)
_CLOSE = (3, 4)


class LayoutError(ValueError):
    """The document is not well-formed JSON at the structural level."""


@dataclass
class DocumentLayout:
    """Byte offsets of a JSON object document's members, and of one member's entries."""

    members: dict[str, tuple[int, int]] = field(default_factory=dict)
    entry_separators: array = field(default_factory=lambda: array("q"))

    @property
    def entry_count(self) -> int:
        """Number of entries found in the member whose entries were asked for."""
        seps = len(self.entry_separators)
        return max(seps - 1, 0)


def _escaped(data: np.ndarray, quote: int, carry_backslashes: int) -> bool:
    """True when the quote at `quote` is preceded by an odd run of backslashes."""
    run = 0
    i = quote - 1
    while i >= 0 and data[i] == 92:
        run += 1
        i -= 1
    if i < 0:
        run += carry_backslashes
    return run % 2 == 1


def _member_name(fd: int, separator: int, colon: int) -> str:
    """The decoded name of a top-level member, read between its separator and its colon."""
    raw = os.pread(fd, colon - separator - 1, separator + 1)
    try:
        name = orjson.loads(raw)
    except orjson.JSONDecodeError:
        name = None
    if not isinstance(name, str):
        raise LayoutError(f"malformed member name near byte {separator + 1}")
    return name


def scan_layout(f: BinaryIO, entries_of: str, chunk_size: int = CHUNK) -> DocumentLayout:
    """Find the members of the JSON object in `f`, and the entries of member `entries_of`.

    Raises:
        LayoutError: the document is not a JSON object, is truncated or has unbalanced brackets.
    """
    fd = f.fileno()
    layout = DocumentLayout()
    depth = 0
    in_string = False
    carry_backslashes = 0
    offset = 0
    started = ended = False
    sep_pos = -1
    current: str | None = None
    value_start = -1
    while True:
        chunk = f.read(chunk_size)
        if not chunk:
            break
        data = np.frombuffer(chunk, dtype=np.uint8)
        kinds = _KIND[data]
        if not started:
            stripped = chunk.lstrip()
            if stripped and stripped[:1] != b"{":
                raise LayoutError("the document is not a JSON object")
        quotes = np.flatnonzero(kinds == 7)
        if len(quotes):
            maybe = quotes[(quotes > 0) & (data[quotes - 1] == 92)]
            escaped = [q for q in maybe.tolist() if _escaped(data, q, carry_backslashes)]
            if quotes[0] == 0 and carry_backslashes % 2 == 1:
                escaped.append(0)
            if escaped:
                quotes = np.setdiff1d(quotes, np.array(escaped, dtype=quotes.dtype))
        structural = np.flatnonzero((kinds >= 1) & (kinds <= 6))
        parity = (np.searchsorted(quotes, structural) + int(in_string)) & 1
        structural = structural[parity == 0]
        skinds = kinds[structural]
        delta = np.where(skinds <= 2, 1, np.where(skinds <= 4, -1, 0)).astype(np.int64)
        after = depth + np.cumsum(delta)
        level = after + (delta < 0)
        if len(after) and after.min() < 0:
            raise LayoutError(
                f"unbalanced closing bracket near byte {offset + int(structural[after.argmin()])}"
            )
        top = np.flatnonzero(level == 1).tolist()
        seg_start = 0
        for idx in [*top, None]:
            seg_end = int(structural[idx]) if idx is not None else len(data)
            if current == entries_of:
                # the separators of the wanted member's entries: its braces and its commas
                seg = (structural >= seg_start) & (structural < seg_end) & (level == 2)
                seg &= (skinds == 1) | (skinds == 3) | (skinds == 5)
                layout.entry_separators.extend((structural[seg] + offset).tolist())
            if idx is None:
                break
            seg_start = seg_end + 1
            pos = offset + seg_end
            kind = int(skinds[idx])
            if ended:
                raise LayoutError(f"unexpected content after the end of the document at byte {pos}")
            if kind in _OPEN:
                if started or kind != 1:
                    raise LayoutError(f"malformed document near byte {pos}")
                started = True
                sep_pos = pos
            elif kind == 6:
                current = _member_name(fd, sep_pos, pos)
                value_start = pos + 1
            else:
                if current is not None:
                    layout.members[current] = (value_start, pos)
                current = None
                sep_pos = pos
                ended = kind in _CLOSE
        depth = int(after[-1]) if len(after) else depth
        in_string = bool((len(quotes) + int(in_string)) & 1)
        tail = len(chunk) - len(chunk.rstrip(b"\\"))
        carry_backslashes = tail + (carry_backslashes if tail == len(chunk) else 0)
        offset += len(chunk)
    if not started:
        raise LayoutError("the document is empty")
    if in_string or depth != 0 or not ended:
        raise LayoutError(
            f"the document is truncated (ends inside a {'string' if in_string else 'value'})"
        )
    return layout
