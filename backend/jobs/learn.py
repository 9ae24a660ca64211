"""The learn job: apply one recorded webhook event to the project's support set.

Idempotent: annotations are keyed by their id, so a replayed event replaces the same
record and a deletion of an unknown id is a no-op. The event stays pending in Redis until
this job applied it, so a worker crash leaves it to be retried, never lost.
"""

from __future__ import annotations

import logging
from typing import Any

from backend import redis_conn, state

log = logging.getLogger(__name__)

ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
DELETE_ACTION = "ANNOTATIONS_DELETED"
TRAIN_ACTION = "START_TRAINING"
LEARN_ACTIONS = (*ANNOTATION_ACTIONS, DELETE_ACTION, TRAIN_ACTION)


def annotation_labels(result: list[dict[str, Any]]) -> dict[str, list]:
    """from_name → the annotator's choices (or taxonomy paths) in one annotation result."""
    labels: dict[str, list] = {}
    for region in result or []:
        value = region.get("value") or {}
        kind = region.get("type")
        if kind in ("choices", "taxonomy") and region.get("from_name"):
            labels.setdefault(region["from_name"], []).extend(value.get(kind, []))
    return labels


def annotation_record(event: dict[str, Any]) -> dict[str, Any]:
    """What the support set keeps of one annotation event."""
    annotation = event.get("annotation") or {}
    task = event.get("task") or {}
    return {
        "task_id": task.get("id") or annotation.get("task"),
        "data": task.get("data") or {},
        "labels": annotation_labels(annotation.get("result") or []),
        "was_cancelled": bool(annotation.get("was_cancelled")),
        "updated_at": annotation.get("updated_at") or annotation.get("created_at"),
    }


def learn_job(event_id: str) -> dict[str, Any]:
    """Apply the stored event ``event_id``; safe to run twice."""
    conn = redis_conn.durable()
    event = state.load_event(conn, event_id)
    if event is None:
        log.warning("event %s not found (already expired?)", event_id)
        return {"event": event_id, "status": "missing"}
    action = event.get("action")
    pid = state.project_id(event.get("project"))
    changed = 0
    if action in ANNOTATION_ACTIONS:
        annotation = event.get("annotation") or {}
        record = annotation_record(event)
        if record["was_cancelled"] or not record["labels"]:
            changed = state.delete_annotation(conn, pid, str(annotation["id"]))
        else:
            state.put_annotation(conn, pid, str(annotation["id"]), record)
            changed = 1
    elif action == DELETE_ACTION:
        for item in event.get("annotations") or []:
            changed += state.delete_annotation(conn, pid, str(item.get("id")))
    elif action == TRAIN_ACTION:
        log.info("project %s: START_TRAINING recorded", pid)
    state.mark_event_applied(conn, event_id)
    log.info("event %s (%s, project %s) applied: %d support records changed", event_id, action, pid, changed)
    return {"event": event_id, "action": action, "project": pid, "changed": changed, "status": "applied"}
