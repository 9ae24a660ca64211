"""Small builders for test inputs: label configs, image bytes, data: URIs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from PIL import Image

SINGLE = (
    '<View><Image name="image" value="$image"/>'
    '<Choices name="label" toName="image" choice="single">{choices}</Choices></View>'
)


def choices_xml(values: list[str]) -> str:
    return "".join(f'<Choice value="{v}"/>' for v in values)


def single_config(values: list[str]) -> str:
    return SINGLE.format(choices=choices_xml(values))


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (64, 48), mode: str = "RGB", color=(200, 30, 30)) -> bytes:
    image = Image.new(mode, size, color if mode in ("RGB", "RGBA", "CMYK") else 128)
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def file_uri(path: Path) -> str:
    return data_uri(path.read_bytes())


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The Authorization header of HTTP Basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
