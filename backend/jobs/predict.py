"""The predict job: one /predict request's tasks, run by a worker with the resident engine."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from backend import metrics, redis_conn, runtime, state, task_scores
from backend.calibration import agreement
from backend.calibration import store as calibration_store
from backend.calibration.model import TargetCalibration
from backend.images.fetch import FetchContext
from backend.images.url_policy import UrlPolicy
from backend.label_studio_api import credentials
from backend.labelconfig import parse_targets
from backend.predictor import PredictOptions, PredictStats, predict
from backend.settings import Settings, get_settings

log = logging.getLogger(__name__)


def fetch_context(settings: Settings, project: dict[str, str]) -> FetchContext:
    """How to reach this project's images: Label Studio host from /setup (else LABEL_STUDIO_URL).

    The token is ``LABEL_STUDIO_API_KEY`` when set (it may be a personal access token), else the
    legacy token Label Studio sent in /setup.
    """
    hostname, token = credentials(settings, project)
    policy = UrlPolicy([hostname, settings.label_studio_url], settings.allowed_hosts)
    return FetchContext(
        hostname=hostname,
        token=token,
        timeout_s=settings.fetch_timeout_s,
        max_bytes=settings.max_image_bytes,
        policy=policy,
        local_files_root=settings.local_files_root,
    )


def predict_options(settings: Settings) -> PredictOptions:
    return PredictOptions(
        templates=settings.templates,
        multi_threshold=settings.multi_threshold,
        batch_size=settings.batch_size,
        decode_workers=settings.decode_workers,
        max_pixels=settings.max_image_pixels,
        image_cache_ttl_s=settings.image_cache_ttl_s,
        jpeg_draft=settings.jpeg_draft,
    )


def calibrated_scoring(calibration: dict[str, TargetCalibration]):
    """(scorer, thresholds) for ``backend.predictor.predict`` from a project's calibration.

    A target uses its calibration only when the classes still match the label config;
    otherwise (config changed, nothing learned yet) it stays zero-shot.
    """
    def scorer(target, X, zero_shot_matrix):
        cal = calibration.get(target.from_name)
        if cal is None or cal.kind == "multiple" or cal.classes != [c.value for c in target.classes]:
            return None
        return cal.probabilities(X, zero_shot_matrix)

    thresholds = {name: cal.thresholds for name, cal in calibration.items()
                  if cal.kind == "multiple" and cal.thresholds is not None}
    return scorer, thresholds


def run_prediction(pid: str, label_config: str, tasks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], PredictStats, str]:
    """Predictions for ``tasks`` (one per task, in order) with the project's calibration, and what they cost.

    Records what was predicted for each task: the shown labels (agreement) and the full
    probabilities and embedding (active-learning queues).
    """
    settings = get_settings()
    engine = runtime.engine()
    conn = redis_conn.durable()
    targets = parse_targets(label_config)
    project = state.load_project(conn, pid)
    version = state.model_version(conn, pid, engine.name)
    scorer, thresholds = calibrated_scoring(calibration_store.load(conn, pid, engine.name))
    predictions, stats = predict(
        engine, targets, tasks, fetch_context(settings, project), predict_options(settings), version,
        cache_conn=redis_conn.cache(), scorer=scorer, thresholds=thresholds,
    )
    if pid:
        agreement.remember_shown(conn, pid, tasks, predictions)
        task_scores.record(conn, pid, tasks, targets, version, stats)
    metrics.incr(conn, "lsclip_images_encoded_total", stats.encoded)
    metrics.incr(conn, "lsclip_image_cache_hits_total", stats.cache_hits)
    metrics.incr(conn, "lsclip_image_errors_total", len(stats.errors))
    metrics.incr(conn, "lsclip_predictions_total", len(predictions))
    return predictions, stats, version


def predict_job(pid: str, label_config: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """Predictions for ``tasks`` (one per task, in order) with this project's current model_version."""
    predictions, stats, version = run_prediction(pid, label_config, tasks)
    return {
        "results": predictions,
        "model_version": version,
        "errors": stats.errors,
        "encoded": stats.encoded,
        "cache_hits": stats.cache_hits,
        "worker": f"{socket.gethostname()}:{os.getpid()}",
        "model_loads": runtime.load_count(),
    }
