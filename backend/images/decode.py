"""Decode image bytes into an RGB PIL image within pixel limits, whatever the format."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.images.errors import ImageError


def decode_image(data: bytes, max_pixels: int, draft_to: tuple[int, int] | None = None) -> Image.Image:
    """RGB image from bytes; refuses bombs, truncated files and non-images with a clear :class:`ImageError`.

    ``draft_to`` lets the JPEG decoder scale down by 1/2, 1/4 or 1/8 while decoding, never below
    that size (faster decode for large photos; results differ slightly, so it is opt-in).
    """
    if not data:
        raise ImageError("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(
                    f"image is {width}x{height} pixels, over LSCLIP_MAX_IMAGE_PIXELS={max_pixels} (decompression bomb guard)"
                )
            if width < 1 or height < 1:
                raise ImageError(f"image has no pixels ({width}x{height})")
            if draft_to and image.format == "JPEG":
                image.draft("RGB", draft_to)
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        head = data[:64].lstrip().lower()
        kind = "HTML" if head.startswith((b"<!doctype html", b"<html")) else "not a recognised image format"
        raise ImageError(f"content is {kind}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image is corrupt or truncated: {exc}") from exc
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """Orientation from EXIF applied; alpha composited on white; 16-bit, CMYK, palette → 8-bit RGB."""
    fmt = image.format
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # broken EXIF must not fail the image
        pass
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        span = arr.max() - arr.min()
        arr = (arr - arr.min()) / span * 255.0 if span > 0 else np.zeros_like(arr)
        image = Image.fromarray(arr.astype(np.uint8), mode="L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    image.format = fmt  # keep the source format (JPEG draft decisions)
    return image
