"""Images as glTF wants them: JPEG, or PNG when there is transparency; and the limit on the pixels
of any image the service decodes."""

from __future__ import annotations

import io

from PIL import Image

MAX_PIXELS = 64_000_000  # refused above this: a decompression bomb or a mistake
# Pillow's own guard, for every image any library opens in this process: it warns above this and
# refuses above twice this when the header is read. Callers check `image.size` against
# MAX_PIXELS themselves before decoding: a warning does not stop a decoder.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def too_many_pixels(image: Image.Image) -> str | None:
    """Why an opened (not yet decoded) image must not be decoded, or None: its header's size."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        return f"too many pixels for a texture ({width:,} × {height:,}; limit {MAX_PIXELS:,})"
    return None


def has_alpha(image: Image.Image) -> bool:
    """Whether an image has transparency (an alpha band or a transparent palette entry)."""
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def encode_for_gltf(image: Image.Image) -> tuple[bytes, str]:
    """The image as PNG when it has transparency, else as JPEG (quality 90); and its MIME type."""
    out = io.BytesIO()
    if has_alpha(image):
        image.convert("RGBA").save(out, "PNG")
        return out.getvalue(), "image/png"
    image.convert("RGB").save(out, "JPEG", quality=90)
    return out.getvalue(), "image/jpeg"
