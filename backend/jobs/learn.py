"""The learn job: apply one recorded webhook event to the project's support set, then refit.

- ``ANNOTATION_CREATED/UPDATED``: the annotation (keyed by its id: a replay or an update replaces
  it) joins the support set with its image embedding (cache, or encoded once); agreement with the
  prediction shown for the task is counted.
- ``ANNOTATIONS_DELETED``: the annotations leave the support set.
- ``START_TRAINING``: the whole support set is rebuilt from the Label Studio API.

Learn jobs of one project are serialised by a Redis lock (many projects learn in parallel), and the
refit runs once the project has no other pending event (a burst of webhooks refits once). The event
stays pending in Redis until applied, so a crashed worker's event is retried, never lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from backend import redis_conn, runtime, state
from backend.calibration import agreement, refit, sync
from backend.calibration.support import annotation_labels, ensure_embeddings
from backend.jobs.predict import fetch_context, predict_options
from backend.label_studio_api import credentials
from backend.labelconfig import LabelConfigError, parse_targets
from backend.settings import get_settings
from backend.state import ANNOTATION_ACTIONS, DELETE_ACTION, TRAIN_ACTION

log = logging.getLogger(__name__)

LOCK_WAIT_S = 900  # how long a learn job waits for the project's lock
LOCK_TTL_S = 30  # the lock expires this long after its holder stopped renewing it (a killed worker)


@contextmanager
def project_lock(conn, pid: str) -> Iterator[None]:
    """The project's learn lock, renewed every ``LOCK_TTL_S / 3`` while held, so a dead holder frees it soon."""
    lock = conn.lock(f"{state.P}lock:learn:{pid}", timeout=LOCK_TTL_S, blocking_timeout=LOCK_WAIT_S)
    if not lock.acquire():
        raise TimeoutError(f"project {pid}: learn lock still held after {LOCK_WAIT_S} s")
    done = threading.Event()

    def renew() -> None:
        while not done.wait(LOCK_TTL_S / 3):
            try:
                lock.reacquire()
            except Exception:  # noqa: BLE001 - lost or Redis down: the job's own calls will fail loudly
                return

    keeper = threading.Thread(target=renew, name=f"learn-lock-{pid}", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        done.set()
        keeper.join(1)
        try:
            lock.release()
        except Exception:  # noqa: BLE001 - expired meanwhile
            log.warning("project %s: learn lock had expired before release", pid)


def annotation_record(event: dict[str, Any]) -> dict[str, Any]:
    """What the support set keeps of one annotation event."""
    annotation = event.get("annotation") or {}
    task = event.get("task") or {}
    return {
        "task_id": task.get("id") or annotation.get("task"),
        "data": task.get("data") or {},
        "labels": annotation_labels(annotation.get("result") or []),
        "was_cancelled": bool(annotation.get("was_cancelled")),
        "updated_at": str(annotation.get("updated_at") or annotation.get("created_at") or ""),
    }


def learn_job(event_id: str) -> dict[str, Any]:
    """Apply the stored event ``event_id``; safe to run twice."""
    conn = redis_conn.durable()
    event = state.load_event(conn, event_id)
    if event is None:
        log.warning("event %s not found (already expired?)", event_id)
        return {"event": event_id, "status": "missing"}
    pid = state.project_id(event.get("project"))
    with project_lock(conn, pid):
        changed = _apply(conn, pid, event)
        state.mark_event_applied(conn, event_id, pid)
        revision, bumped = None, False
        if changed and not state.pending_events(conn, pid):
            revision, bumped = _refit(conn, pid, event, reason=event.get("action", ""))
    log.info("event %s (%s, project %s) applied: %d support records changed%s", event_id, event.get("action"), pid,
             changed, f", now r{revision}" if bumped else "")
    return {"event": event_id, "action": event.get("action"), "project": pid, "changed": changed,
            "revision": revision, "status": "applied"}


def _targets(conn, pid: str, event: dict[str, Any]):
    config = event.get("label_config") or state.load_project(conn, pid).get("label_config", "")
    try:
        return parse_targets(config)
    except LabelConfigError as exc:
        log.warning("project %s: cannot learn, label config unusable: %s", pid, exc)
        return ()


def _apply(conn, pid: str, event: dict[str, Any]) -> int:
    action = event.get("action")
    if action in ANNOTATION_ACTIONS:
        annotation = event.get("annotation") or {}
        annotation_id = str(annotation["id"])
        record = annotation_record(event)
        if record["was_cancelled"] or not record["labels"]:
            agreement.forget(conn, pid, annotation_id)
            return state.delete_annotation(conn, pid, annotation_id)
        agreement.record(conn, pid, annotation_id, record["task_id"], record["labels"])
        targets = _targets(conn, pid, event)
        if targets:
            _embed(conn, pid, {annotation_id: record}, targets)
        state.put_annotation(conn, pid, annotation_id, record)
        return 1
    if action == DELETE_ACTION:
        removed = 0
        for item in event.get("annotations") or []:
            agreement.forget(conn, pid, str(item.get("id")))
            removed += state.delete_annotation(conn, pid, str(item.get("id")))
        return removed
    if action == TRAIN_ACTION:
        return _sync(conn, pid, event)
    return 0


def _embed(conn, pid: str, records: dict[str, dict[str, Any]], targets) -> None:
    settings = get_settings()
    ensure_embeddings(records, targets, runtime.engine(), fetch_context(settings, state.load_project(conn, pid)),
                      predict_options(settings), cache_conn=redis_conn.cache())


def _sync(conn, pid: str, event: dict[str, Any]) -> int:
    """Rebuild the support set from Label Studio; returns how many records it now holds (at least 1 when it
    held some before, so emptying it still refits)."""
    settings = get_settings()
    project = state.load_project(conn, pid)
    hostname, token = credentials(settings, project)
    records = sync.fetch_records(hostname, token, pid)
    known = state.annotations(conn, pid)
    for rid, record in records.items():  # keep embeddings already computed for unchanged annotations
        old = known.get(rid)
        if old and old.get("data") == record["data"]:
            record["embeddings"] = old.get("embeddings", {})
    targets = _targets(conn, pid, event)
    if targets:
        _embed(conn, pid, records, targets)
    state.replace_annotations(conn, pid, records)
    return len(records) or (1 if known else 0)


def _refit(conn, pid: str, event: dict[str, Any], reason: str) -> tuple[int, bool]:
    settings = get_settings()
    targets = _targets(conn, pid, event)
    if not targets:
        return state.revision(conn, pid), False
    records = state.annotations(conn, pid)
    missing = ensure_embeddings(records, targets, runtime.engine(), fetch_context(settings, state.load_project(conn, pid)),
                                predict_options(settings), cache_conn=redis_conn.cache())
    for rid in missing:  # records embedded under another engine were refreshed
        state.put_annotation(conn, pid, rid, records[rid])
    return refit.refit(conn, pid, runtime.engine(), targets, settings.templates, settings.multi_threshold, reason,
                       cache_conn=redis_conn.cache())
