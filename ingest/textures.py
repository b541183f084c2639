"""Texture images a city model names, read from beside the file so that the database holds
everything the tiles draw: JPEG and PNG are kept byte for byte; other formats (TIFF, GIF, BMP,
...) and images larger than glTF viewers load well are re-encoded. What cannot be read is
reported, never fatal: its surfaces are drawn in their plain colour."""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from PIL import Image

from cim.images import MAX_PIXELS, encode_for_gltf, too_many_pixels

MAX_SIDE = 4096  # pixels: larger images are scaled down (what WebGL viewers load everywhere)
MAX_BYTES = 256_000_000  # a texture file larger than this is refused unread
KEPT = {"JPEG": "image/jpeg", "PNG": "image/png"}


@dataclass(frozen=True)
class TextureImage:
    """One stored texture image; `idx` is its index in the dataset's texture list."""

    idx: int
    source: str
    mime: str
    width: int
    height: int
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class TextureImages:
    """Reads the images of a texture list, one at a time, noting what could not be used."""

    textures: list[Any]
    base: Path  # the folder of the city-model file
    embedded: dict[int, Any] = field(default_factory=dict)  # decoded images inside the file
    drawn: set[int] | None = None  # the textures some polygon shows: only these are read
    missing: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "name: why"
    converted: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[TextureImage]:
        for idx, texture in enumerate(self.textures):
            undrawn = self.drawn is not None and idx not in self.drawn
            if idx in self.embedded and not undrawn:  # opened (not decoded) by the mesh library
                embedded = self._embedded(idx, self.embedded[idx])
                if embedded is not None:
                    yield embedded
                continue
            name = texture.get("image") if isinstance(texture, dict) else None
            if not isinstance(name, str) or not name:
                continue
            path = self._local(name)
            if path is None:
                continue
            if not path.is_file():
                self.missing.append(name)
                continue
            if undrawn:  # another theme, or no polygon uses it: listed, not stored
                continue
            image = self._read(idx, name, path)
            if image is not None:
                yield image

    def _local(self, name: str) -> Path | None:
        """The file an image name stands for, if it is a file inside the model's folder."""
        try:
            parsed = urlparse(name)
            if parsed.scheme and len(parsed.scheme) > 1 and parsed.scheme != "file":
                self.refused.append(f"{name}: not a local file (images are never downloaded)")
                return None
            relative = Path(unquote(parsed.path if parsed.scheme == "file" else name))
            base = self.base.resolve()
            path = (base / relative).resolve()
        except (ValueError, OSError):
            self.refused.append(f"{name!r}: not a usable file name")
            return None
        if relative.is_absolute() or not path.is_relative_to(base):
            self.refused.append(f"{name}: outside the folder of the city-model file")
            return None
        return path

    def _read(self, idx: int, name: str, path: Path) -> TextureImage | None:
        size = path.stat().st_size
        if size > MAX_BYTES:
            self.refused.append(f"{name}: {size / 1e6:.0f} MB is too large for a texture")
            return None
        data = path.read_bytes()  # once: kept as it is, or decoded from memory
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as img:  # the header: pixels checked first
                    too_many = too_many_pixels(img)
                    if too_many:
                        self.refused.append(f"{name}: {too_many}")
                        return None
                    img.load()
                    width, height = img.size
                    if img.format in KEPT and max(width, height) <= MAX_SIDE:
                        return TextureImage(idx, name, KEPT[img.format], width, height, data)
                    return self._reencoded(idx, name, img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            self.refused.append(f"{name}: too many pixels for a texture (limit {MAX_PIXELS:,})")
            return None
        except (OSError, ValueError, SyntaxError) as exc:
            self.refused.append(f"{name}: not a readable image ({exc})")
            return None

    def _embedded(self, idx: int, img: Image.Image) -> TextureImage | None:
        """An image inside the model file (a glTF's), opened by the mesh library but not yet
        decoded: held to the same limits as an image file, its size checked first."""
        name = f"embedded image {idx}"
        too_many = too_many_pixels(img)
        if too_many:
            self.refused.append(f"{name}: {too_many}")
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return self._reencoded(idx, name, img)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            self.refused.append(f"{name}: too many pixels for a texture (limit {MAX_PIXELS:,})")
            return None
        except (OSError, ValueError, SyntaxError) as exc:
            self.refused.append(f"{name}: not a readable image ({exc})")
            return None

    def _reencoded(self, idx: int, name: str, img: Image.Image) -> TextureImage:
        """PNG when the image has transparency, else JPEG; at most MAX_SIDE pixels a side."""
        if max(img.size) > MAX_SIDE:
            img = img.copy()
            img.thumbnail((MAX_SIDE, MAX_SIDE))
        data, mime = encode_for_gltf(img)
        self.converted.append(name)
        return TextureImage(idx, name, mime, img.size[0], img.size[1], data)

    def report(self) -> list[str]:
        """Warnings for the ingest report."""
        total = sum(1 for t in self.textures if isinstance(t, dict) and t.get("image"))
        out = []
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
            out.append(
                f"{len(self.missing)} of {total} texture images are missing ({shown}): "
                "their surfaces are drawn without texture"
            )
        for problem in self.refused[:10]:
            out.append(f"texture image {problem}: its surfaces are drawn without texture")
        if len(self.refused) > 10:
            out.append(f"... and {len(self.refused) - 10} more texture images not used")
        if self.converted:
            out.append(
                f"{len(self.converted)} texture images were re-encoded for glTF (JPEG or PNG, at "
                f"most {MAX_SIDE} pixels a side); the originals stay in the source"
            )
        return out
