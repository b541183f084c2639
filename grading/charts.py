"""Charts as SVG text, for the report and the dashboard alike (one drawing, two places)."""

from __future__ import annotations

import math
import re
from html import escape

PALETTE = ("#1f6feb", "#d97706", "#6b7280")
STAR_COLOURS = {5: "#b45309", 4: "#d97706", 3: "#f59e0b", 2: "#9ca3af", 1: "#d1d5db", 0: "#e5e7eb"}
LABEL_PX, TITLE_PX = 11, 13  # font sizes of the radar's axis labels and title
LINE = 1.25  # line height, in font sizes
LABEL_EM = 13.0  # a longer label wraps, at spaces or between CJK characters
PAD = 8
# a line's box around its centre, in font sizes: room for the ascent and descent of the fonts
# the report and the browser pick (Noto Sans CJK: 1.16 and 0.29), the baseline 0.38 below
ABOVE, BELOW, BASELINE = 0.8, 0.7, 0.38
CJK = re.compile(r"[\u2e80-\uffff]")
PIECE = re.compile(r"\s*(?:[\u2e80-\uffff]|[^\s\u2e80-\uffff]+)")  # a word, or one CJK character


def _em(char: str) -> float:
    if CJK.match(char):
        return 1.0
    if char in "mwMW@%":
        return 0.95
    if char.isupper() or char.isdigit():
        return 0.72
    if char in " .,:;'!|il()[]-":
        return 0.36
    return 0.62


def text_em(text: str) -> float:
    """The width of `text` in font sizes: generous for the sans-serif Latin and CJK fonts a
    browser or WeasyPrint picks, so that a box reckoned from it holds the text."""
    return sum(_em(c) for c in text)


def wrap(label: str, max_em: float = LABEL_EM) -> list[str]:
    """A label in balanced lines of at most `max_em` font sizes, broken at spaces or between
    CJK characters (a longer word stays whole); a line after the first starts with the space
    it was broken at, so that the text's content is still the label."""
    if text_em(label) <= max_em:
        return [label]
    pieces = PIECE.findall(label)
    wanted = math.ceil(text_em(label) / max_em)
    limit = text_em(label) / wanted  # the narrowest limit that gives `wanted` lines
    while True:
        lines = [""]
        for piece in pieces:
            if lines[-1] and text_em(lines[-1] + piece) > limit:
                lines.append(piece)
            else:
                lines[-1] += piece
        if len(lines) <= wanted or limit >= max_em:
            return lines
        limit += 0.25


def radar(labels: list[str], shares: list[float], size: int = 320, title: str = "") -> str:
    """A radar chart: one axis per label, each share 0..1 of that axis (clipped). The drawing is
    as large as its labels need: long ones wrap, and none is ever cut off."""
    n = len(labels)
    r = size * 0.32

    def at(k: int, share: float) -> tuple[float, float]:  # around the centre (0, 0)
        angle = -math.pi / 2 + 2 * math.pi * k / max(n, 1)
        return r * share * math.cos(angle), r * share * math.sin(angle)

    # each label's lines, anchor and top; the box around everything sets the viewBox
    xs, ys = [-r, r], [-r, r]
    placed = []
    for k, label in enumerate(labels):
        lx, ly = at(k, 1.12)
        lines = wrap(label)
        width = max(text_em(line) for line in lines) * LABEL_PX
        height = len(lines) * LINE * LABEL_PX
        if abs(lx) < 4:  # on the vertical axis: above or below the chart
            anchor, left = "middle", lx - width / 2
            top = ly - height if ly < 0 else ly
        else:  # beside the chart, centred on the axis
            anchor, left = ("start", lx) if lx > 0 else ("end", lx - width)
            top = ly - height / 2
        xs += [left, left + width]
        ys += [top - (ABOVE - LINE / 2) * LABEL_PX, top + height + (BELOW - LINE / 2) * LABEL_PX]
        placed.append((lx, top, anchor, lines))
    title_y = min(ys) - 4 - BELOW * TITLE_PX  # the title's centre, above everything
    if title:
        half = text_em(title) * TITLE_PX * 0.55  # bold: a tenth wider
        xs += [-half, half]
        ys.append(title_y - ABOVE * TITLE_PX)
    half_width = max(-min(xs), max(xs)) + PAD  # the chart in the middle
    cx, cy = half_width, PAD - min(ys)
    width, height = math.ceil(2 * half_width), math.ceil(max(ys) - min(ys) + 2 * PAD)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="radar" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}">'
    ]

    def pt(x: float, y: float) -> str:
        return f"{cx + x:.1f},{cy + y:.1f}"

    for ring in (0.2, 0.4, 0.6, 0.8, 1.0):
        pts = " ".join(pt(*at(k, ring)) for k in range(n))
        parts.append(f'<polygon points="{pts}" fill="none" stroke="#d1d5db" stroke-width="1"/>')
    for k in range(n):
        x, y = at(k, 1.0)
        parts.append(
            f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{cx + x:.1f}" y2="{cy + y:.1f}" '
            'stroke="#d1d5db"/>'
        )
    for lx, top, anchor, lines in placed:
        if anchor != "end":  # the space a line was broken at goes where it is not seen
            lines = [
                a + " " * b.startswith(" ") for a, b in zip(lines, lines[1:], strict=False)
            ] + [lines[-1]]
            lines = [lines[0], *(line.lstrip() for line in lines[1:])]
        # explicit baselines (no dominant-baseline): browsers and WeasyPrint agree on them
        at_x = f"{cx + lx:.1f}"
        baselines = [
            f"{cy + top + (i + 0.5) * LINE * LABEL_PX + BASELINE * LABEL_PX:.1f}"
            for i in range(len(lines))
        ]
        text = (  # a label of one line is the text itself; a longer one a tspan per line
            escape(lines[0])
            if len(lines) == 1
            else "".join(
                f'<tspan x="{at_x}" y="{baselines[i]}">{escape(line)}</tspan>'
                for i, line in enumerate(lines)
            )
        )
        parts.append(
            f'<text x="{at_x}" y="{baselines[0]}" font-size="{LABEL_PX}" text-anchor="{anchor}" '
            f'fill="#374151">{text}</text>'
        )
    pts = " ".join(pt(*at(k, max(0.0, min(1.0, s)))) for k, s in enumerate(shares))
    parts.append(
        f'<polygon class="radar-area" points="{pts}" fill="{PALETTE[0]}" fill-opacity="0.25" '
        f'stroke="{PALETTE[0]}" stroke-width="2"/>'
    )
    if title:
        parts.append(
            f'<text x="{cx:.1f}" y="{cy + title_y + BASELINE * TITLE_PX:.1f}" '
            f'font-size="{TITLE_PX}" text-anchor="middle" font-weight="bold">{escape(title)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def score_bars(
    rows: list[tuple[str, float, int]], scale: float, thresholds: dict[int, float], width: int = 640
) -> str:
    """Horizontal bars of (label, score, stars), with the star thresholds as dashed lines."""
    bar_h, gap, left, right = 16, 6, 110, 95
    height = len(rows) * (bar_h + gap) + 30
    plot = width - left - right
    top = max([scale, *(s for _, s, _ in rows)]) or 1.0

    def x(v: float) -> float:
        return left + plot * v / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bars" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img">'
    ]
    for level, points in sorted(thresholds.items()):
        parts.append(
            f'<line x1="{x(points):.1f}" y1="10" x2="{x(points):.1f}" y2="{height - 14}" '
            f'stroke="#9ca3af" stroke-dasharray="3,3"/>'
            f'<text x="{x(points):.1f}" y="{height - 2}" font-size="10" text-anchor="middle" '
            f'fill="#6b7280">{level}★ {points:g}</text>'
        )
    for k, (label, value, stars) in enumerate(rows):
        y = 10 + k * (bar_h + gap)
        parts.append(
            f'<text x="{left - 6}" y="{y + bar_h / 2:.1f}" font-size="11" text-anchor="end" '
            f'dominant-baseline="middle">{escape(label)}</text>'
            f'<rect x="{left}" y="{y}" width="{max(0.0, x(value) - left):.1f}" height="{bar_h}" '
            f'fill="{STAR_COLOURS.get(stars, PALETTE[2])}"/>'
            f'<text x="{x(value) + 4:.1f}" y="{y + bar_h / 2:.1f}" font-size="11" '
            f'dominant-baseline="middle">{value:.1f} {"★" * stars}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
