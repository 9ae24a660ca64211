"""Getting task images: resolve the URL, fetch the bytes safely, decode within limits."""

from backend.images.errors import ImageError

__all__ = ["ImageError"]
