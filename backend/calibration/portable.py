"""Calibration export/import: a project's support set and fitted calibration as one JSON document."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from backend import state
from backend.calibration import store

FORMAT = "lsclip-calibration/1"


def export_project(conn: redis.Redis, pid: str) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "project": pid,
        "exported_at": time.time(),
        "revision": state.revision(conn, pid),
        "calibration": store.load_blob(conn, pid),
        "support": state.annotations(conn, pid),
        "label_config": state.load_project(conn, pid).get("label_config", ""),
    }


def import_project(conn: redis.Redis, pid: str, blob: dict[str, Any]) -> int:
    """Replace the project's support set and calibration; the result is a new revision (Label Studio re-predicts)."""
    if blob.get("format") != FORMAT:
        raise ValueError(f"not an lsclip calibration file (format {blob.get('format')!r}, expected {FORMAT!r})")
    state.replace_annotations(conn, pid, blob.get("support") or {})
    if blob.get("label_config") and not state.load_project(conn, pid).get("label_config"):
        state.save_project(conn, pid, blob["label_config"], "", "")
    calibration = blob.get("calibration")
    revision = int(conn.incr(f"{state.P}project:{pid}:revision"))
    if calibration:
        calibration = {**calibration, "revision": revision, "imported_from": blob.get("project")}
        conn.set(f"{state.P}project:{pid}:calibration", json.dumps(calibration))
        conn.hset(f"{state.P}project:{pid}:revisions", str(revision), json.dumps(
            {"revision": revision, "support": len(blob.get("support") or {}), "reason": "import", "created_at": time.time()}))
        state.model_version(conn, pid, calibration.get("engine"))
    return revision
