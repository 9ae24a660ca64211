"""Image embeddings cached per (engine, image content hash) in the evictable cache role.

A re-prediction of a known image (after a calibration change, or a second request for the
same task) is then a matrix product, not a forward pass. Entries expire after
``LSCLIP_IMAGE_CACHE_TTL`` seconds; the cache Redis may also evict them (allkeys-lru).
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import redis

from backend.engines.base import Engine

log = logging.getLogger(__name__)


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _prefix(engine: Engine) -> str:
    model = hashlib.sha256(f"{engine.name}|{engine.model_id}|{engine.precision}".encode()).hexdigest()[:12]
    return f"lsclip:cache:img:{model}:"


def get_many(conn: redis.Redis | None, engine: Engine, hashes: list[str]) -> dict[str, np.ndarray]:
    """Cached embeddings for the given content hashes (missing ones are absent)."""
    if conn is None or not hashes:
        return {}
    try:
        raw = conn.mget([_prefix(engine) + h for h in hashes])
    except redis.RedisError as exc:
        log.warning("image cache unavailable: %s", exc)
        return {}
    return {h: np.frombuffer(r, dtype=np.float32).copy() for h, r in zip(hashes, raw) if r}


def put_many(conn: redis.Redis | None, engine: Engine, items: dict[str, np.ndarray], ttl_s: int) -> None:
    if conn is None or not items:
        return
    try:
        pipe = conn.pipeline(transaction=False)
        for h, vec in items.items():
            pipe.set(_prefix(engine) + h, np.asarray(vec, np.float32).tobytes(), ex=ttl_s)
        pipe.execute()
    except redis.RedisError as exc:
        log.warning("image cache unavailable: %s", exc)
