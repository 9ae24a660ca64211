"""Durable state in Redis: project context, versions, engine status, annotation events.

Key layout (all under ``lsclip:``; see docs/ARCHITECTURE.md):

- ``project:{pid}``              hash: label_config, hostname, access_token, updated_at
- ``project:{pid}:revision``     int: calibration revision (``model_version = <engine>@r<N>``)
- ``project:{pid}:annotations``  hash: annotation id → the annotator's choices (support set)
- ``versions``                   zset: every model_version handed out, scored by first use
- ``engine``                     hash: what the workers loaded (name, model, device, fallback)
- ``engine:error``               string: the last model-load failure, cleared by a good load
- ``event:{id}`` / ``events:pending``  webhook events, kept until a learn job applied them
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from backend.engines.naming import engine_short_name
from backend.settings import get_settings

P = "lsclip:"


def project_id(raw: Any) -> str:
    """Label Studio sends ``"<id>.<created_at>"`` in /setup and /predict, and ``{"id": ...}`` in webhooks."""
    if isinstance(raw, dict):
        raw = raw.get("id", "")
    text = str(raw if raw is not None else "").strip()
    return text.split(".", 1)[0] if text else ""


# -- project context ---------------------------------------------------------

def save_project(conn: redis.Redis, pid: str, label_config: str, hostname: str, access_token: str) -> None:
    """Record what /setup told us about a project (idempotent)."""
    mapping = {"label_config": label_config or "", "hostname": hostname or "", "updated_at": str(time.time())}
    if access_token:
        mapping["access_token"] = access_token
    conn.hset(f"{P}project:{pid}", mapping=mapping)


def load_project(conn: redis.Redis, pid: str) -> dict[str, str]:
    """The stored context of a project (empty dict when unknown)."""
    raw = conn.hgetall(f"{P}project:{pid}") if pid else {}
    return {k.decode(): v.decode() for k, v in raw.items()}


# -- versions ----------------------------------------------------------------

def engine_info(conn: redis.Redis) -> dict[str, str]:
    """What the workers published about their engine (empty before any worker loaded)."""
    return {k.decode(): v.decode() for k, v in conn.hgetall(f"{P}engine").items()}


def publish_engine(conn: redis.Redis, info: dict[str, str]) -> None:
    pipe = conn.pipeline()
    pipe.delete(f"{P}engine")
    pipe.hset(f"{P}engine", mapping={**info, "loaded_at": str(time.time())})
    pipe.delete(f"{P}engine:error")
    pipe.execute()


def record_engine_error(conn: redis.Redis, message: str) -> None:
    conn.set(f"{P}engine:error", message, ex=24 * 3600)


def engine_error(conn: redis.Redis) -> str:
    raw = conn.get(f"{P}engine:error")
    return raw.decode() if raw else ""


def engine_name(conn: redis.Redis) -> str:
    """The loaded engine's short name, else the one the settings imply."""
    return engine_info(conn).get("name") or engine_short_name(get_settings())


def revision(conn: redis.Redis, pid: str) -> int:
    raw = conn.get(f"{P}project:{pid}:revision") if pid else None
    return int(raw) if raw else 0


def model_version(conn: redis.Redis, pid: str, name: str | None = None) -> str:
    """``<engine>@r<revision>``, remembered in the versions list."""
    version = f"{name or engine_name(conn)}@r{revision(conn, pid)}"
    conn.zadd(f"{P}versions", {version: time.time()}, nx=True)
    return version


def revision_of(version: str) -> int:
    """The N of ``<engine>@r<N>`` (-1 for a version this backend did not make)."""
    tail = version.rsplit("@r", 1)[-1]
    return int(tail) if "@r" in version and tail.isdigit() else -1


def versions(conn: redis.Redis) -> list[str]:
    return [v.decode() for v in conn.zrange(f"{P}versions", 0, -1)]


# -- webhook events ------------------------------------------------------------

ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_ACTION = "ANNOTATIONS_DELETED"
TRAIN_ACTION = "START_TRAINING"
LEARN_ACTIONS = (*ANNOTATION_ACTIONS, DELETE_ACTION, TRAIN_ACTION)

def record_event(conn: redis.Redis, event_id: str, event: dict[str, Any]) -> None:
    """Store an event durably before it is enqueued; it stays pending until applied."""
    pid = project_id(event.get("project"))
    pipe = conn.pipeline()
    pipe.set(f"{P}event:{event_id}", json.dumps(event))
    pipe.zadd(f"{P}events:pending", {event_id: time.time()})
    pipe.zadd(f"{P}project:{pid}:events:pending", {event_id: time.time()})
    pipe.hincrby(f"{P}events:received", event.get("action", "UNKNOWN"), 1)
    pipe.execute()


def load_event(conn: redis.Redis, event_id: str) -> dict[str, Any] | None:
    raw = conn.get(f"{P}event:{event_id}")
    return json.loads(raw) if raw else None


def mark_event_applied(conn: redis.Redis, event_id: str, pid: str) -> None:
    pipe = conn.pipeline()
    pipe.zrem(f"{P}events:pending", event_id)
    pipe.zrem(f"{P}project:{pid}:events:pending", event_id)
    pipe.expire(f"{P}event:{event_id}", 7 * 24 * 3600)
    pipe.execute()


def pending_events(conn: redis.Redis, pid: str | None = None) -> list[str]:
    key = f"{P}project:{pid}:events:pending" if pid else f"{P}events:pending"
    return [e.decode() for e in conn.zrange(key, 0, -1)]


def events_received(conn: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in conn.hgetall(f"{P}events:received").items()}


# -- support set (annotations) ---------------------------------------------------

def put_annotation(conn: redis.Redis, pid: str, annotation_id: str, record: dict[str, Any]) -> None:
    conn.hset(f"{P}project:{pid}:annotations", annotation_id, json.dumps(record))


def delete_annotation(conn: redis.Redis, pid: str, annotation_id: str) -> int:
    return int(conn.hdel(f"{P}project:{pid}:annotations", annotation_id))


def annotations(conn: redis.Redis, pid: str) -> dict[str, dict[str, Any]]:
    raw = conn.hgetall(f"{P}project:{pid}:annotations")
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def replace_annotations(conn: redis.Redis, pid: str, records: dict[str, dict[str, Any]]) -> None:
    """Swap the whole support set at once (sync from Label Studio, calibration import)."""
    key = f"{P}project:{pid}:annotations"
    pipe = conn.pipeline()
    pipe.delete(key)
    if records:
        pipe.hset(key, mapping={k: json.dumps(v) for k, v in records.items()})
    pipe.execute()
