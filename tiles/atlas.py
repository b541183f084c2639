"""Texture atlases: a tile's small textures packed into one image, so that a viewer draws them
with one primitive and one texture instead of one per image (a mesh scene often has dozens of
128-pixel textures). Only textures whose coordinates stay inside their image can share an atlas
(repeating textures keep their own primitive). Pure: textured parts in, textured parts out."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from cim.images import encode_for_gltf, has_alpha
from tiles.gltf import TexturedPart

TILE_BUDGET = 16_000_000  # bytes of texture images a tile may carry; beyond, the largest shrink
MAX_PIECE = 512  # pixels a side: larger images keep their own primitive
MAX_ATLAS = 4096  # pixels a side
PAD = 2  # pixels of each piece's edge repeated around it (no bleeding between neighbours)
_EPS = 1e-4


@dataclass
class _Piece:
    part: TexturedPart
    image: Image.Image
    x: int = 0
    y: int = 0


def _fits(part: TexturedPart) -> bool:
    uv = part.uvs
    return bool(len(uv)) and bool(((uv >= -_EPS) & (uv <= 1 + _EPS)).all())


def _shelves(pieces: list[_Piece], width: int) -> int:
    """Place pieces (tallest first) on shelves of the given width; returns the height used."""
    x = y = shelf = 0
    for p in sorted(pieces, key=lambda p: -p.image.height):
        w, h = p.image.width + 2 * PAD, p.image.height + 2 * PAD
        if x + w > width:
            x, y, shelf = 0, y + shelf, 0
        p.x, p.y = x, y
        x += w
        shelf = max(shelf, h)
    return y + shelf


def within_budget(parts: list[TexturedPart], budget: int = TILE_BUDGET) -> list[TexturedPart]:
    """The parts with the largest images halved until all of them fit the tile's budget (a tile
    of many large textures would otherwise grow to hundreds of megabytes); coordinates are
    relative, so they stay as they are."""
    parts = list(parts)
    while sum(len(p.image) for p in parts) > budget:
        k = max(range(len(parts)), key=lambda n: len(parts[n].image))
        image = Image.open(io.BytesIO(parts[k].image))
        if max(image.size) <= 64:
            break
        data, mime = encode_for_gltf(
            image.resize((max(image.width // 2, 1), max(image.height // 2, 1)))
        )
        parts[k] = replace(parts[k], image=data, mime=mime)
    return parts


def _power_of_two(n: int) -> int:
    return 1 << max(n - 1, 1).bit_length()


def pack(parts: list[TexturedPart]) -> list[TexturedPart]:
    """The parts with the small, non-repeating textures joined into one atlas part (JPEG, or
    PNG when a piece has transparency); the others as they were."""
    pieces = []
    for part in parts:
        if _fits(part):
            image = Image.open(io.BytesIO(part.image))
            if max(image.size) <= MAX_PIECE:
                pieces.append(_Piece(part, image))
    if len(pieces) < 2:
        return parts
    area = sum((p.image.width + 2 * PAD) * (p.image.height + 2 * PAD) for p in pieces)
    widest = max(p.image.width for p in pieces) + 2 * PAD
    width = max(_power_of_two(int(area**0.5)), _power_of_two(widest))
    height = _power_of_two(_shelves(pieces, width))
    if width > MAX_ATLAS or height > MAX_ATLAS:
        return parts
    alpha = any(has_alpha(p.image) for p in pieces)
    mode = "RGBA" if alpha else "RGB"
    atlas = Image.new(mode, (width, height))
    joined = []
    for p in pieces:
        piece = p.image.convert(mode)
        w, h = piece.size
        # the piece's edges repeated into its padding, then the piece itself
        atlas.paste(piece.resize((w + 2 * PAD, h + 2 * PAD)), (p.x, p.y))
        atlas.paste(piece, (p.x + PAD, p.y + PAD))
        uv = p.part.uvs.astype(np.float64)
        moved = np.column_stack(
            ((p.x + PAD + uv[:, 0] * w) / width, (p.y + PAD + uv[:, 1] * h) / height)
        )
        joined.append((p.part, moved.astype(np.float32)))
    data, mime = encode_for_gltf(atlas)
    base = np.cumsum([0] + [len(part.positions) for part, _ in joined])
    merged = TexturedPart(
        image=data,
        mime=mime,
        positions=np.concatenate([part.positions for part, _ in joined]),
        normals=np.concatenate([part.normals for part, _ in joined]),
        uvs=np.concatenate([uv for _, uv in joined]),
        feature_ids=np.concatenate([part.feature_ids for part, _ in joined]),
        indices=np.concatenate(
            [part.indices + np.uint32(b) for (part, _), b in zip(joined, base, strict=False)]
        ).astype(np.uint32),
    )
    packed = {id(p.part) for p in pieces}
    return [merged, *(part for part in parts if id(part) not in packed)]
