"""The one error type a task's image can fail with."""


class ImageError(Exception):
    """This task's image cannot be used; the message says why (never contains secrets)."""
