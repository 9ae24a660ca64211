"""Short engine names for ``model_version``, derived without loading anything."""

from __future__ import annotations

import re
from pathlib import PurePath

from backend.settings import Settings

OFFLINE_ENGINE_NAME = "offline-conse-lite0"


def engine_short_name(settings: Settings) -> str:
    """``openai/clip-vit-base-patch32`` → ``clip-vit-base-patch32``; a local path → its folder name."""
    if settings.is_offline_model:
        return OFFLINE_ENGINE_NAME
    base = PurePath(settings.model.rstrip("/")).name or settings.model
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-").lower() or "model"
