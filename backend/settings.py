"""All configuration, read from the environment in one place.

Every other module asks :func:`get_settings` instead of reading ``os.environ``.
Names follow Label Studio's own conventions where they exist
(``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

#: A curated subset of CLIP's ImageNet prompt templates (the seven the CLIP authors
#: found best as an ensemble, plus the plain "a photo of a {}."). Small on purpose:
#: text encoding on CPU costs ~5 ms per prompt.
DEFAULT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)

OFFLINE_MODEL = "offline"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"setting {name} must be a number, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name).lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def _env_list(name: str, default: tuple[str, ...], sep: str = ",") -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    return tuple(part.strip() for part in raw.split(sep) if part.strip())


@dataclass(frozen=True)
class Settings:
    """The service's configuration. See docs/SETTINGS.md for every field."""

    # model
    model: str = "openai/clip-vit-base-patch32"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 32
    decode_workers: int = 2
    templates: tuple[str, ...] = DEFAULT_TEMPLATES
    multi_threshold: float = 0.3
    fallback_offline: bool = True
    jpeg_draft: bool = False
    torch_threads: int = 0
    # redis
    redis_url: str = ""
    cache_redis_url: str = ""
    embedded_redis_path: str = ""
    image_cache_ttl_s: int = 7 * 24 * 3600
    cache_dir: str = ""
    # label studio
    label_studio_url: str = ""
    label_studio_api_key: str = ""
    backend_url: str = "http://127.0.0.1:9090"
    # protocol
    basic_auth_user: str = ""
    basic_auth_pass: str = ""
    webhook_secret: str = ""
    predict_timeout_s: float = 90.0
    job_timeout_s: int = 120
    max_tasks_per_request: int = 1000
    max_request_bytes: int = 64 * 1024 * 1024
    max_inflight_per_project: int = 16
    max_queue: int = 500
    # images
    fetch_timeout_s: float = 10.0
    max_image_bytes: int = 30 * 1024 * 1024
    max_image_pixels: int = 80_000_000
    local_files_root: str = ""
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    # serve
    workers: int = 1
    log_level: str = "INFO"

    @property
    def basic_auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)

    @property
    def is_offline_model(self) -> bool:
        return self.model.lower() in {OFFLINE_MODEL, "conse"}


def load_settings() -> Settings:
    """Build :class:`Settings` from the current environment (no caching)."""
    templates = _env_list("LSCLIP_TEMPLATES", DEFAULT_TEMPLATES, sep="|")
    for template in templates:
        if "{}" not in template:
            raise ValueError(
                f"setting LSCLIP_TEMPLATES: template {template!r} has no '{{}}' for the label text"
            )
    return Settings(
        model=_env("LSCLIP_MODEL", Settings.model),
        device=_env("LSCLIP_DEVICE", "auto").lower(),
        precision=_env("LSCLIP_PRECISION", "auto").lower(),
        batch_size=max(1, _env_int("LSCLIP_BATCH_SIZE", Settings.batch_size)),
        decode_workers=max(1, _env_int("LSCLIP_DECODE_WORKERS", Settings.decode_workers)),
        templates=templates,
        multi_threshold=_env_float("LSCLIP_MULTI_THRESHOLD", Settings.multi_threshold),
        fallback_offline=_env_bool("LSCLIP_FALLBACK_OFFLINE", True),
        jpeg_draft=_env_bool("LSCLIP_JPEG_DRAFT", False),
        torch_threads=_env_int("LSCLIP_TORCH_THREADS", 0),
        redis_url=_env("REDIS_URL"),
        cache_redis_url=_env("LSCLIP_CACHE_REDIS_URL"),
        embedded_redis_path=_env("LSCLIP_EMBEDDED_REDIS", ""),
        image_cache_ttl_s=_env_int("LSCLIP_IMAGE_CACHE_TTL", Settings.image_cache_ttl_s),
        cache_dir=_env("LSCLIP_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "lsclip")),
        label_studio_url=_env("LABEL_STUDIO_URL").rstrip("/"),
        label_studio_api_key=_env("LABEL_STUDIO_API_KEY"),
        backend_url=_env("LSCLIP_BACKEND_URL", Settings.backend_url).rstrip("/"),
        basic_auth_user=_env("BASIC_AUTH_USER"),
        basic_auth_pass=_env("BASIC_AUTH_PASS"),
        webhook_secret=_env("LSCLIP_WEBHOOK_SECRET"),
        predict_timeout_s=_env_float("LSCLIP_PREDICT_TIMEOUT", Settings.predict_timeout_s),
        job_timeout_s=_env_int("LSCLIP_JOB_TIMEOUT", Settings.job_timeout_s),
        max_tasks_per_request=_env_int("LSCLIP_MAX_TASKS", Settings.max_tasks_per_request),
        max_request_bytes=_env_int("LSCLIP_MAX_REQUEST_BYTES", Settings.max_request_bytes),
        max_inflight_per_project=max(1, _env_int("LSCLIP_MAX_INFLIGHT_PER_PROJECT", Settings.max_inflight_per_project)),
        max_queue=max(1, _env_int("LSCLIP_MAX_QUEUE", Settings.max_queue)),
        fetch_timeout_s=_env_float("LSCLIP_FETCH_TIMEOUT", Settings.fetch_timeout_s),
        max_image_bytes=_env_int("LSCLIP_MAX_IMAGE_BYTES", Settings.max_image_bytes),
        max_image_pixels=_env_int("LSCLIP_MAX_IMAGE_PIXELS", Settings.max_image_pixels),
        local_files_root=_env("LOCAL_FILES_DOCUMENT_ROOT"),
        allowed_hosts=_env_list("LSCLIP_ALLOWED_HOSTS", ()),
        workers=max(1, _env_int("LSCLIP_WORKERS", 1)),
        log_level=_env("LOG_LEVEL", "INFO").upper(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def reset_settings() -> None:
    """Forget the cached settings (tests and the CLI change the environment)."""
    get_settings.cache_clear()
