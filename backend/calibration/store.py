"""Per-project calibration state in durable Redis, with revisions.

- ``project:{pid}:calibration``  JSON: engine, revision, one TargetCalibration per from_name
- ``project:{pid}:revisions``    hash: revision → what that refit learned from (support size, layers, CV)

A refit whose calibration differs from the stored one bumps the revision, so ``model_version``
(``<engine>@r<N>``) changes and Label Studio re-predicts on "retrieve predictions".
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from typing import Any

import redis

from backend.calibration.model import TargetCalibration
from backend.state import P, model_version

_memo: dict[tuple[str, int], dict[str, TargetCalibration]] = {}
_memo_lock = threading.Lock()


def _key(pid: str) -> str:
    return f"{P}project:{pid}:calibration"


def fingerprint(targets: dict[str, TargetCalibration]) -> str:
    blob = json.dumps({k: v.to_json() for k, v in sorted(targets.items())}, sort_keys=True, default=str)
    blob_wo_stats = json.loads(blob)
    for value in blob_wo_stats.values():
        value.pop("stats", None)
    return hashlib.sha256(json.dumps(blob_wo_stats, sort_keys=True).encode()).hexdigest()[:16]


def load_blob(conn: redis.Redis, pid: str) -> dict[str, Any] | None:
    raw = conn.get(_key(pid))
    return json.loads(raw) if raw else None


def load(conn: redis.Redis, pid: str, engine_name: str) -> dict[str, TargetCalibration]:
    """The project's calibration for ``engine_name`` (empty when none, or fitted for another engine)."""
    raw_rev = conn.get(f"{P}project:{pid}:revision")
    revision = int(raw_rev) if raw_rev else 0
    if revision == 0:
        return {}
    with _memo_lock:
        hit = _memo.get((pid, revision))
    if hit is not None:
        return hit
    blob = load_blob(conn, pid)
    if not blob or blob.get("engine") != engine_name:
        return {}
    targets = {name: TargetCalibration.from_json(obj) for name, obj in blob["targets"].items()}
    with _memo_lock:
        _memo[(pid, revision)] = targets
    return targets


def save(conn: redis.Redis, pid: str, engine_name: str, targets: dict[str, TargetCalibration],
         support_size: int, reason: str) -> tuple[int, bool]:
    """Store a refit; returns (revision, changed). Unchanged calibrations keep the revision."""
    new_print = fingerprint(targets)
    current = load_blob(conn, pid)
    if current and current.get("engine") == engine_name and current.get("fingerprint") == new_print:
        return int(current["revision"]), False
    if not current and not any(t.layer != "zero-shot" for t in targets.values()):
        return 0, False  # nothing learned yet: stay at r0
    revision = int(conn.incr(f"{P}project:{pid}:revision"))
    blob = {"engine": engine_name, "revision": revision, "fingerprint": new_print, "created_at": time.time(),
            "targets": {k: v.to_json() for k, v in targets.items()}}
    summary = {"revision": revision, "support": support_size, "reason": reason, "created_at": blob["created_at"],
               "targets": {k: {"layer": v.layer, **{s: v.stats.get(s) for s in ("n", "chain", "cv_top1", "cv_top1_zero_shot")
                                                       if s in v.stats}} for k, v in targets.items()}}
    pipe = conn.pipeline()
    pipe.set(_key(pid), json.dumps(blob))
    pipe.hset(f"{P}project:{pid}:revisions", str(revision), json.dumps(summary))
    pipe.execute()
    model_version(conn, pid, engine_name)
    return revision, True


def revisions(conn: redis.Redis, pid: str) -> list[dict[str, Any]]:
    """What each revision learned from, oldest first."""
    rows = [json.loads(v) for v in conn.hgetall(f"{P}project:{pid}:revisions").values()]
    return sorted(rows, key=lambda r: r["revision"])
