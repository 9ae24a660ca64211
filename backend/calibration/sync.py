"""Rebuild a project's support set from the Label Studio API (all annotations), through label-studio-sdk.

Label Studio's webhooks have a 1 s timeout and no retry, so ``START_TRAINING`` and
``lsclip sync --project N`` re-read every annotation: a missed webhook costs nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from backend.calibration.support import annotation_labels
from backend.label_studio_api import client

log = logging.getLogger(__name__)


def fetch_records(hostname: str, token: str, pid: str) -> dict[str, dict[str, Any]]:
    """annotation id → support record, for every non-cancelled annotation of the project."""
    ls = client(hostname, token)
    records: dict[str, dict[str, Any]] = {}
    for task in ls.tasks.list(project=int(pid), fields="all"):
        for annotation in getattr(task, "annotations", None) or []:
            ann = annotation if isinstance(annotation, dict) else annotation.dict()
            if ann.get("was_cancelled"):
                continue
            labels = annotation_labels(ann.get("result") or [])
            if not labels:
                continue
            records[str(ann["id"])] = {
                "task_id": task.id, "data": dict(task.data or {}), "labels": labels, "was_cancelled": False,
                "updated_at": str(ann.get("updated_at") or ann.get("created_at") or ""),
            }
    log.info("project %s: %d annotations read from Label Studio", pid, len(records))
    return records
