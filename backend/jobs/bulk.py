"""The bulk job: pre-annotate one chunk of a project's tasks and write the predictions to Label Studio.

``lsclip preannotate`` enqueues chunks on the bulk queue (below interactive and learn work). A
chunk's predictions go to Label Studio in one ``import predictions`` request, so an interrupted
run leaves whole chunks written or not at all; predictions this backend made earlier for the same
tasks (older versions) are deleted only after the new ones are stored.
"""

from __future__ import annotations

import logging
from typing import Any

from backend import redis_conn, state
from backend.jobs.predict import run_prediction
from backend.label_studio_api import client, credentials
from backend.settings import get_settings

log = logging.getLogger(__name__)


def bulk_predict_job(pid: str, label_config: str, tasks: list[dict[str, Any]],
                     replace: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """Predict ``tasks`` and store one prediction per task in Label Studio.

    ``replace`` maps a task id to ids of this backend's older predictions on it, deleted once the new
    one is written. Returns counts and the reason of every task that failed.
    """
    predictions, stats, version = run_prediction(pid, label_config, tasks)
    hostname, token = credentials(get_settings(), state.load_project(redis_conn.durable(), pid))
    ls = client(hostname, token)
    rows = [{"task": int(task["id"]), "result": p["result"], "score": p["score"], "model_version": version}
            for task, p in zip(tasks, predictions) if p["result"]]
    if rows:
        ls.projects.import_predictions(id=int(pid), request=rows)
    deleted = 0
    for row in rows:
        for prediction_id in (replace or {}).get(str(row["task"]), []):
            try:
                ls.predictions.delete(int(prediction_id))
                deleted += 1
            except Exception as exc:  # noqa: BLE001 - already gone, or not ours to delete: keep going
                log.warning("could not delete old prediction %s of task %s: %s", prediction_id, row["task"], exc)
    log.info("project %s: %d predictions written (%s), %d failed, %d old ones replaced",
             pid, len(rows), version, len(stats.errors), deleted)
    return {"model_version": version, "written": len(rows), "failed": stats.errors, "deleted": deleted,
            "encoded": stats.encoded, "cache_hits": stats.cache_hits}
