"""Did the prediction shown for a task agree with the annotator? Counted per model_version.

The predict job remembers what it showed for each task (``project:{pid}:shown``); when an
annotation arrives its labels are compared with that prediction. Each annotation counts once
(an update replaces its earlier contribution), so replays change nothing.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from backend.state import P


def remember_shown(conn: redis.Redis, pid: str, tasks: list[dict[str, Any]], predictions: list[dict[str, Any]]) -> None:
    """Store what was predicted for each task (its version, labels per control, score)."""
    pipe = conn.pipeline(transaction=False)
    for task, prediction in zip(tasks, predictions):
        if task.get("id") is None or not prediction["result"]:
            continue
        labels = {r["from_name"]: _labels(r) for r in prediction["result"]}
        pipe.hset(f"{P}project:{pid}:shown", str(task["id"]),
                  json.dumps({"version": prediction["model_version"], "labels": labels, "score": prediction["score"]}))
    pipe.execute()


def _labels(region: dict[str, Any]) -> list:
    value = region.get("value") or {}
    if region.get("type") == "taxonomy":
        return [list(path) for path in value.get("taxonomy", [])]
    return list(value.get("choices", []))


def _norm(labels: list) -> list:
    return sorted(json.dumps(x) for x in labels)


def record(conn: redis.Redis, pid: str, annotation_id: str, task_id: Any, annotator: dict[str, list]) -> dict[str, Any] | None:
    """Count agreement of this annotation with the prediction shown for its task (None if none was shown)."""
    raw = conn.hget(f"{P}project:{pid}:shown", str(task_id))
    if not raw:
        return None
    shown = json.loads(raw)
    common = [name for name in shown["labels"] if name in annotator]
    if not common:
        return None
    agree = all(_norm(shown["labels"][n]) == _norm(annotator[n]) for n in common)
    first = annotator[common[0]]
    label = json.dumps(first[0]) if first and not isinstance(first[0], str) else (first[0] if first else "")
    entry = {"version": shown["version"], "agree": int(agree), "label": label, "score": shown["score"]}
    key, seen = f"{P}project:{pid}:agreement", f"{P}project:{pid}:agreement:seen"
    previous = conn.hget(seen, annotation_id)
    pipe = conn.pipeline()
    if previous:
        _count(pipe, key, json.loads(previous), -1)
    _count(pipe, key, entry, +1)
    pipe.hset(seen, annotation_id, json.dumps(entry))
    pipe.execute()
    return entry


def forget(conn: redis.Redis, pid: str, annotation_id: str) -> None:
    """A deleted annotation no longer counts."""
    seen = f"{P}project:{pid}:agreement:seen"
    previous = conn.hget(seen, annotation_id)
    if previous:
        pipe = conn.pipeline()
        _count(pipe, f"{P}project:{pid}:agreement", json.loads(previous), -1)
        pipe.hdel(seen, annotation_id)
        pipe.execute()


def _count(pipe, key: str, entry: dict[str, Any], sign: int) -> None:
    v = entry["version"]
    pipe.hincrby(key, f"{v}|total", sign)
    pipe.hincrby(key, f"{v}|agree", sign * entry["agree"])
    pipe.hincrby(key, f"{v}|class|{entry['label']}|total", sign)
    pipe.hincrby(key, f"{v}|class|{entry['label']}|agree", sign * entry["agree"])


def summary(conn: redis.Redis, pid: str) -> dict[str, Any]:
    """Agreement per model_version: totals, rate, per class (the annotator's label)."""
    out: dict[str, Any] = {}
    for field, value in conn.hgetall(f"{P}project:{pid}:agreement").items():
        parts = field.decode().split("|")
        version = parts[0]
        row = out.setdefault(version, {"total": 0, "agree": 0, "per_class": {}})
        if len(parts) == 2:
            row[parts[1]] = int(value)
        else:
            row["per_class"].setdefault(parts[2], {"total": 0, "agree": 0})[parts[3]] = int(value)
    for row in out.values():
        row["rate"] = row["agree"] / row["total"] if row["total"] else None
        for cls in row["per_class"].values():
            cls["rate"] = cls["agree"] / cls["total"] if cls["total"] else None
    return out


def all_projects(conn: redis.Redis) -> list[str]:
    return sorted({k.decode().split(":")[2] for k in conn.scan_iter(match=f"{P}project:*:agreement")})
