"""A small on-disk cache for arrays that are expensive to compute and never change."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from backend.settings import get_settings

log = logging.getLogger(__name__)


def cached_array(kind: str, key_parts: Sequence[str], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()`` once per (kind, key_parts), kept in ``LSCLIP_CACHE_DIR``; a read-only dir just recomputes."""
    digest = hashlib.sha256("\x1f".join(key_parts).encode()).hexdigest()[:20]
    path = Path(get_settings().cache_dir) / f"{kind}-{digest}.npy"
    try:
        return np.load(path)
    except (OSError, ValueError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, value)
        os.replace(tmp, path)
    except OSError as exc:
        log.info("cache dir not writable (%s); %s will be recomputed next start", exc, kind)
    return value
