"""Texture atlases: every vertex of a packed part shows the same pixel of the atlas as it showed
of its own image; repeating or large textures are left alone."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tiles.atlas import MAX_PIECE, pack
from tiles.gltf import TexturedPart


def _part(size: tuple[int, int], seed: int, uvs: np.ndarray) -> TexturedPart:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    pixels[..., 3] = 255 - seed  # a little transparency: the atlas is PNG, so exact
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    n = len(uvs)
    return TexturedPart(
        image=out.getvalue(),
        mime="image/png",
        positions=rng.normal(size=(n, 3)).astype(np.float32),
        normals=np.tile(np.float32([0, 0, 1]), (n, 1)),
        uvs=uvs.astype(np.float32),
        feature_ids=np.full(n, seed, np.float32),
        indices=np.arange(n - n % 3, dtype=np.uint32),
    )


def _pixel(image: bytes, uv: np.ndarray) -> np.ndarray:
    """The pixel a (u, v) (glTF: origin top left) falls in."""
    img = np.asarray(Image.open(io.BytesIO(image)).convert("RGBA"))
    h, w = img.shape[:2]
    x = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    y = np.clip((uv[:, 1] * h).astype(int), 0, h - 1)
    return img[y, x]


def test_packed_vertices_show_the_same_pixels() -> None:
    rng = np.random.default_rng(1)
    # pixel centres, so that both sides sample one pixel without ambiguity
    sizes = [(64, 32), (128, 128), (17, 45), (200, 90)]
    parts = []
    for n, (w, h) in enumerate(sizes):
        xs, ys = rng.integers(0, w, 30), rng.integers(0, h, 30)
        parts.append(_part((w, h), n, np.column_stack(((xs + 0.5) / w, (ys + 0.5) / h))))
    [atlas] = pack(parts)
    assert atlas.mime == "image/png"
    assert len(atlas.positions) == sum(len(p.positions) for p in parts)
    start = 0
    for part in parts:
        n = len(part.positions)
        before = _pixel(part.image, part.uvs)
        after = _pixel(atlas.image, atlas.uvs[start : start + n])
        assert (before == after).all()
        assert (atlas.positions[start : start + n] == part.positions).all()
        assert (atlas.feature_ids[start : start + n] == part.feature_ids).all()
        start += n
    # triangles still join the same vertices
    got = atlas.positions[atlas.indices.astype(int)]
    want = np.concatenate([p.positions[p.indices.astype(int)] for p in parts])
    assert (got == want).all()
    w, h = Image.open(io.BytesIO(atlas.image)).size
    assert w & (w - 1) == 0 and h & (h - 1) == 0  # powers of two: mipmaps everywhere


def test_repeating_and_large_textures_keep_their_own_primitive() -> None:
    inside = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.8]])
    repeating = _part((32, 32), 1, inside * 3)  # wraps around three times
    large = _part((MAX_PIECE + 1, 8), 2, inside)
    small = [_part((16, 16), 3, inside), _part((16, 16), 4, inside)]
    out = pack([repeating, large, *small])
    assert len(out) == 3 and repeating in out and large in out
    assert pack([small[0]]) == [small[0]]  # one texture: nothing to join


def test_a_tile_over_its_texture_budget_shrinks_its_largest_images() -> None:
    from tiles.atlas import within_budget

    inside = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.8]])
    parts = [_part((400, 400), n, inside) for n in range(3)]  # noise PNGs: about 640 kB each
    total = sum(len(p.image) for p in parts)
    out = within_budget(parts, budget=total // 2)
    assert sum(len(p.image) for p in out) <= total // 2
    sizes = sorted(Image.open(io.BytesIO(p.image)).size for p in out)
    assert sizes[0][0] < 400 and all(w == h for w, h in sizes)  # halved, proportions kept
    assert [p.uvs.tolist() for p in out] == [p.uvs.tolist() for p in parts]
    assert within_budget(parts, budget=total) == parts  # within budget: untouched
