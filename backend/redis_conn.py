"""Redis connections for the two roles: durable state and evictable caches."""

from __future__ import annotations

import logging
from functools import lru_cache

import redis

from backend.settings import get_settings

log = logging.getLogger(__name__)

#: Default socket timeout (seconds) for ordinary commands: fail fast when Redis is gone.
SOCKET_TIMEOUT_S = 5.0


class RedisNotConfigured(RuntimeError):
    """Raised when no Redis URL is set and no embedded Redis was started."""


def url() -> str:
    settings = get_settings()
    url = settings.redis_url
    if not url:
        from backend.embedded_redis import running_url

        url = running_url(settings.embedded_redis_path or None)
    if not url:
        raise RedisNotConfigured(
            "REDIS_URL is not set; run `lsclip serve` (embedded Redis) or set REDIS_URL=redis://host:6379/0"
        )
    return url


def connect(url: str, socket_timeout: float | None = SOCKET_TIMEOUT_S) -> redis.Redis:
    """A client for ``url`` with bounded connect and command timeouts."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=2.0,
        health_check_interval=30,
    )


@lru_cache(maxsize=1)
def durable() -> redis.Redis:
    """The connection for queues and durable state (project context, events, calibration)."""
    return connect(url())


@lru_cache(maxsize=1)
def cache() -> redis.Redis:
    """The connection for evictable caches (text and image embeddings)."""
    settings = get_settings()
    return connect(settings.cache_redis_url or url())


@lru_cache(maxsize=1)
def waiting() -> redis.Redis:
    """A connection whose socket timeout outlasts the longest result wait.

    redis-py defaults to a 5 s socket timeout, which would cut a blocking wait
    for a job result short (see docs/ARCHITECTURE.md).
    """
    settings = get_settings()
    return connect(url(), socket_timeout=settings.predict_timeout_s + 10)


def reset_connections() -> None:
    """Drop cached clients (after settings change, or in a forked child)."""
    for factory in (durable, cache, waiting):
        factory.cache_clear()
