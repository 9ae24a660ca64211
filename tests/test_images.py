"""Fetching and decoding task images: formats, broken files, limits, tokens, and the URL policy."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from backend.images.decode import decode_image
from backend.images.errors import ImageError
from backend.images.fetch import FetchContext, fetch_bytes
from backend.images.url_policy import UrlPolicy
from tests.fileserver import LEGACY, PAT, FileServer
from tests.helpers import data_uri, image_bytes

MAX_PIXELS = 4_000_000


def _png_16bit() -> bytes:
    arr = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 60).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares huge dimensions (decompression-bomb shape) with a tiny body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


def _palette_gif_with_transparency() -> bytes:
    image = Image.new("P", (20, 20), 1)
    image.info["transparency"] = 0
    buf = io.BytesIO()
    image.save(buf, format="GIF", transparency=0)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        image_bytes("PNG"),
        image_bytes("WEBP"),
        image_bytes("GIF", mode="P"),
        image_bytes("JPEG", mode="CMYK", color=(0, 200, 200, 0)),
        image_bytes("PNG", mode="RGBA", color=(10, 200, 10, 60)),
        image_bytes("PNG", mode="LA"),
        image_bytes("PNG", size=(1, 1)),
        image_bytes("BMP"),
        image_bytes("TIFF"),
        _png_16bit(),
        _palette_gif_with_transparency(),
    ],
    ids=["png", "webp", "gif", "cmyk-jpeg", "rgba-png", "la-png", "1px", "bmp", "tiff", "16bit-png", "gif-transparent"],
)
def test_every_common_format_decodes_to_rgb(data):
    image = decode_image(data, MAX_PIXELS)
    assert image.mode == "RGB" and image.size[0] >= 1


def test_alpha_is_composited_on_white():
    transparent = image_bytes("PNG", mode="RGBA", color=(0, 0, 0, 0))
    assert decode_image(transparent, MAX_PIXELS).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "data, fragment",
    [
        (image_bytes("JPEG", size=(200, 200))[:300], "corrupt or truncated"),
        (b"\xff\xd8\xff\xe0garbage" * 20, "corrupt"),
        (b"just some text, not an image" * 5, "not a recognised image"),
        (b"<!DOCTYPE html><html>login</html>", "HTML"),
        (b"", "empty"),
        (_png_header_only(30000, 30000), "decompression bomb"),
    ],
    ids=["truncated-jpeg", "corrupt", "text", "html", "empty", "bomb"],
)
def test_broken_images_fail_with_a_clear_reason(data, fragment):
    with pytest.raises(ImageError) as info:
        decode_image(data, MAX_PIXELS)
    assert fragment in str(info.value)


def _ctx(hostname: str = "", token: str = "", allowed: tuple[str, ...] = (), root: str = "", timeout: float = 5) -> FetchContext:
    return FetchContext(hostname=hostname, token=token, timeout_s=timeout, max_bytes=1_000_000,
                        policy=UrlPolicy([hostname], allowed), local_files_root=root)


def test_data_uri_good_and_bad():
    raw = image_bytes()
    assert fetch_bytes(data_uri(raw), _ctx()) == raw
    with pytest.raises(ImageError, match="invalid base64"):
        fetch_bytes("data:image/jpeg;base64,@@notbase64@@", _ctx())
    with pytest.raises(ImageError, match="no ','"):
        fetch_bytes("data:image/jpeg;base64", _ctx())


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x.jpg", "gopher://x/"])
def test_other_schemes_are_refused(url):
    with pytest.raises(ImageError, match="not allowed|unsupported"):
        fetch_bytes(url, _ctx())


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x.jpg", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/x.jpg",
                                 "http://[::1]/x.jpg"])
def test_private_and_metadata_addresses_are_refused_unless_allowed(url):
    with pytest.raises(ImageError, match="non-public"):
        fetch_bytes(url, _ctx())


def test_label_studio_upload_with_legacy_token_and_pat():
    raw = image_bytes()
    with FileServer({"/data/upload/1/a.jpg": raw}) as server:
        assert fetch_bytes("/data/upload/1/a.jpg", _ctx(server.url, LEGACY)) == raw
        assert server.requests[-1][1] == f"Token {LEGACY}"
        assert fetch_bytes("/data/upload/1/a.jpg", _ctx(server.url, PAT)) == raw
        assert fetch_bytes("/data/upload/1/a.jpg", _ctx(server.url, PAT)) == raw
        assert server.requests[-1][1].startswith("Bearer ")
        assert server.refreshes == 1, "the access token is reused, not refreshed per image"
        with pytest.raises(ImageError, match="HTTP 401") as info:
            fetch_bytes("/data/upload/1/a.jpg", _ctx(server.url, "wrong-token-value"))
        assert "wrong-token-value" not in str(info.value)


def test_relative_url_without_known_host_says_what_to_do():
    with pytest.raises(ImageError, match="LABEL_STUDIO_URL"):
        fetch_bytes("/data/upload/1/a.jpg", _ctx())


def test_http_errors_html_timeouts_and_redirect_recheck():
    with FileServer({"/ok.jpg": image_bytes()}) as server:
        host = f"127.0.0.1:{server.port}"
        allowed = _ctx(allowed=(host,), timeout=1)
        assert fetch_bytes(server.url + "/ok.jpg", allowed)
        with pytest.raises(ImageError, match="HTTP 404"):
            fetch_bytes(server.url + "/missing.jpg", allowed)
        with pytest.raises(ImageError, match="timed out"):
            fetch_bytes(server.url + "/slow", allowed)
        html = fetch_bytes(server.url + "/html", allowed)
        with pytest.raises(ImageError, match="HTML"):
            decode_image(html, MAX_PIXELS)
        # a redirect from an allowed host to a private one is re-checked and refused
        with pytest.raises(ImageError, match="non-public"):
            fetch_bytes(server.url + "/redirect?to=http://10.1.2.3/x.jpg", allowed)


def test_local_files_are_read_from_the_document_root_and_cannot_escape(tmp_path):
    (tmp_path / "imgs").mkdir()
    raw = image_bytes()
    (tmp_path / "imgs" / "a.jpg").write_bytes(raw)
    ctx = _ctx(root=str(tmp_path))
    assert fetch_bytes("/data/local-files/?d=imgs/a.jpg", ctx) == raw
    with pytest.raises(ImageError, match="escapes"):
        fetch_bytes("/data/local-files/?d=../../etc/passwd", ctx)


def test_byte_limit():
    ctx = FetchContext(hostname="", token="", timeout_s=5, max_bytes=100, policy=UrlPolicy([], ()))
    with pytest.raises(ImageError, match="LSCLIP_MAX_IMAGE_BYTES"):
        fetch_bytes(data_uri(image_bytes(size=(300, 300))), ctx)
