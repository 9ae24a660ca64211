"""Per-task class probabilities and image embeddings, kept for active learning.

Every prediction (interactive or bulk) records, per task, the full probability vector of each
target and the task's image embedding, so ``lsclip queue`` can rank unlabeled tasks by
uncertainty and spread a batch over the embedding space without touching the model:

- ``project:{pid}:task-scores``      hash: task id → {"version", "kinds", "probs": {from_name: [...]}}
- ``project:{pid}:task-embeddings``  hash: task id → float16 embedding bytes
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from backend.labelconfig import Target
from backend.predictor import PredictStats
from backend.state import P


def _scores_key(pid: str) -> str:
    return f"{P}project:{pid}:task-scores"


def _embeddings_key(pid: str) -> str:
    return f"{P}project:{pid}:task-embeddings"


def record(conn: redis.Redis, pid: str, tasks: Sequence[dict[str, Any]], targets: Sequence[Target], version: str,
           stats: PredictStats) -> int:
    """Store what a prediction computed for each task with an id; returns how many were stored."""
    if not pid:
        return 0
    kinds = {t.from_name: t.kind for t in targets}
    pipe = conn.pipeline(transaction=False)
    stored = 0
    for i, probs in stats.probabilities.items():
        task_id = tasks[i].get("id") if isinstance(tasks[i], dict) else None
        if task_id is None:
            continue
        record = {"version": version, "kinds": kinds,
                  "probs": {name: [round(float(x), 6) for x in p] for name, p in probs.items()}}
        pipe.hset(_scores_key(pid), str(task_id), json.dumps(record))
        if i in stats.embeddings:
            pipe.hset(_embeddings_key(pid), str(task_id), np.asarray(stats.embeddings[i], np.float16).tobytes())
        stored += 1
    pipe.execute()
    return stored


def load(conn: redis.Redis, pid: str, task_ids: Sequence[int | str] | None = None) -> dict[str, dict[str, Any]]:
    """Stored records by task id (all of the project's, or those of ``task_ids`` that exist)."""
    if task_ids is None:
        raw = conn.hgetall(_scores_key(pid))
        return {k.decode(): json.loads(v) for k, v in raw.items()}
    ids = [str(t) for t in task_ids]
    if not ids:
        return {}
    values = conn.hmget(_scores_key(pid), ids)
    return {tid: json.loads(v) for tid, v in zip(ids, values) if v}


def embeddings(conn: redis.Redis, pid: str, task_ids: Sequence[int | str]) -> dict[str, np.ndarray]:
    """Stored image embeddings (float32) of the given tasks; tasks without one are absent."""
    ids = [str(t) for t in task_ids]
    if not ids:
        return {}
    values = conn.hmget(_embeddings_key(pid), ids)
    return {tid: np.frombuffer(v, dtype=np.float16).astype(np.float32) for tid, v in zip(ids, values) if v}
