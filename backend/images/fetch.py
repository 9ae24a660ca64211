"""Turn a task's image reference into bytes: Label Studio paths, http(s) URLs, data: URIs, local files."""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urljoin, urlsplit

import requests

from backend.images.errors import ImageError
from backend.images.ls_auth import auth_for
from backend.images.url_policy import UrlPolicy

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
LS_RELATIVE_PREFIXES = ("/data/", "/storage-data/", "/tasks/", "/api/")


@dataclass(frozen=True)
class FetchContext:
    """Where and how to fetch one project's images."""

    hostname: str  # Label Studio base URL
    token: str  # legacy token or personal access token (never logged)
    timeout_s: float
    max_bytes: int
    policy: UrlPolicy
    local_files_root: str = ""


def fetch_bytes(ref: str, ctx: FetchContext) -> bytes:
    """The bytes behind ``ref`` or an :class:`ImageError` that says why not."""
    if not isinstance(ref, str) or not ref.strip():
        raise ImageError("task has no image reference (empty value)")
    ref = ref.strip()
    if ref.startswith("data:"):
        return _decode_data_uri(ref, ctx.max_bytes)
    if ref.startswith(LS_RELATIVE_PREFIXES):
        local = _local_file(ref, ctx.local_files_root)
        if local is not None:
            return _read_local(local, ctx.max_bytes)
        if not ctx.hostname:
            raise ImageError(
                f"relative Label Studio URL {ref.split('?')[0]!r} but no Label Studio host is known: "
                "connect the backend from Label Studio (/setup) or set LABEL_STUDIO_URL"
            )
        return _http_get(urljoin(ctx.hostname.rstrip("/") + "/", ref.lstrip("/")), ctx)
    scheme = urlsplit(ref).scheme
    if scheme in ("http", "https"):
        return _http_get(ref, ctx)
    if scheme in ("s3", "gs", "azure-blob"):
        raise ImageError(
            f"{scheme}:// URLs are not fetched directly: enable presigned URLs in the Label Studio cloud storage settings"
        )
    raise ImageError(f"unsupported image reference scheme {scheme or 'none'!r} (use http(s), data: or a Label Studio path)")


def _decode_data_uri(uri: str, max_bytes: int) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep:
        raise ImageError("data: URI has no ',' separating header and payload")
    if len(payload) * 3 // 4 > max_bytes:
        raise ImageError(f"data: URI payload exceeds LSCLIP_MAX_IMAGE_BYTES={max_bytes}")
    if ";base64" in header:
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"data: URI has invalid base64: {exc}") from exc
    return unquote(payload).encode("latin-1", errors="replace")


def _local_file(ref: str, root: str) -> Path | None:
    """``/data/local-files/?d=rel/path`` read straight from disk when the worker shares LOCAL_FILES_DOCUMENT_ROOT."""
    if not root or not ref.startswith("/data/local-files"):
        return None
    rel = parse_qs(urlsplit(ref).query).get("d", [""])[0]
    if not rel:
        raise ImageError("local-files URL without ?d=<path>")
    base = Path(root).resolve()
    path = (base / rel.lstrip("/")).resolve()
    if base != path and base not in path.parents:
        raise ImageError("local-files path escapes LOCAL_FILES_DOCUMENT_ROOT")
    return path if path.is_file() else None


def _read_local(path: Path, max_bytes: int) -> bytes:
    size = os.path.getsize(path)
    if size > max_bytes:
        raise ImageError(f"image is {size} bytes, over LSCLIP_MAX_IMAGE_BYTES={max_bytes}")
    return path.read_bytes()


def _http_get(url: str, ctx: FetchContext) -> bytes:
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        ctx.policy.check(current)
        headers = {"User-Agent": "lsclip"}
        if ctx.policy.is_trusted(current):
            headers.update(auth_for(ctx.hostname, ctx.token).header() if ctx.token else {})
        try:
            response = requests.get(current, headers=headers, timeout=ctx.timeout_s, stream=True, allow_redirects=False)
        except requests.Timeout as exc:
            raise ImageError(f"timed out after {ctx.timeout_s:.0f} s fetching {_safe(current)}") from exc
        except requests.RequestException as exc:
            raise ImageError(f"cannot fetch {_safe(current)}: {type(exc).__name__}") from exc
        with response:
            if response.is_redirect and response.headers.get("Location"):
                current = urljoin(current, response.headers["Location"])
                continue
            if response.status_code == 401 or response.status_code == 403:
                raise ImageError(
                    f"HTTP {response.status_code} fetching {_safe(current)}: Label Studio refused the token; enable "
                    "legacy tokens in Label Studio or set LABEL_STUDIO_API_KEY to a personal access token"
                )
            if response.status_code != 200:
                raise ImageError(f"HTTP {response.status_code} fetching {_safe(current)}")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > ctx.max_bytes:
                raise ImageError(f"image is {declared} bytes, over LSCLIP_MAX_IMAGE_BYTES={ctx.max_bytes}")
            chunks, total = [], 0
            try:
                for chunk in response.iter_content(64 * 1024):
                    total += len(chunk)
                    if total > ctx.max_bytes:
                        raise ImageError(f"image exceeds LSCLIP_MAX_IMAGE_BYTES={ctx.max_bytes}")
                    chunks.append(chunk)
            except requests.RequestException as exc:
                raise ImageError(f"connection broke while reading {_safe(current)}: {type(exc).__name__}") from exc
            return b"".join(chunks)
    raise ImageError(f"more than {MAX_REDIRECTS} redirects from {_safe(url)}")


def _safe(url: str) -> str:
    """A URL without query string or credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
