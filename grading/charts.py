"""Charts as SVG text, for the report and the dashboard alike (one drawing, two places)."""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f6feb", "#d97706", "#6b7280")
STAR_COLOURS = {5: "#b45309", 4: "#d97706", 3: "#f59e0b", 2: "#9ca3af", 1: "#d1d5db", 0: "#e5e7eb"}


def radar(labels: list[str], shares: list[float], size: int = 320, title: str = "") -> str:
    """A radar chart: one axis per label, each share 0..1 of that axis (clipped)."""
    n = len(labels)
    width = size + 100  # room for the labels left and right
    cx, cy = width / 2, size / 2
    r = size * 0.32
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="radar" width="{width}" height="{size}" '
        f'viewBox="0 0 {width} {size}" role="img" aria-label="{escape(title)}">'
    ]

    def at(k: int, share: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * k / max(n, 1)
        return cx + r * share * math.cos(angle), cy + r * share * math.sin(angle)

    for ring in (0.2, 0.4, 0.6, 0.8, 1.0):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (at(k, ring) for k in range(n)))
        parts.append(f'<polygon points="{pts}" fill="none" stroke="#d1d5db" stroke-width="1"/>')
    for k, label in enumerate(labels):
        x, y = at(k, 1.0)
        lx, ly = at(k, 1.22)
        anchor = "middle" if abs(lx - cx) < 4 else ("start" if lx > cx else "end")
        parts.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="#d1d5db"/>')
        parts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="11" text-anchor="{anchor}" '
            f'dominant-baseline="middle" fill="#374151">{escape(label)}</text>'
        )
    pts = " ".join(
        f"{x:.1f},{y:.1f}" for x, y in (at(k, max(0.0, min(1.0, s))) for k, s in enumerate(shares))
    )
    parts.append(
        f'<polygon class="radar-area" points="{pts}" fill="{PALETTE[0]}" fill-opacity="0.25" '
        f'stroke="{PALETTE[0]}" stroke-width="2"/>'
    )
    if title:
        parts.append(
            f'<text x="{cx}" y="14" font-size="13" text-anchor="middle" font-weight="bold">'
            f"{escape(title)}</text>"
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
