"""Images as glTF wants them: JPEG, or PNG when there is transparency."""

from __future__ import annotations

import io

from PIL import Image


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
