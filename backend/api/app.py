"""Flask app for Label Studio's ML-backend protocol.

``/health`` and ``/setup`` are cheap (Label Studio gives them 1 s and 3 s); ``/predict``
enqueues an RQ job on the interactive queue and waits for it below Label Studio's 100 s;
``/webhook`` records the event durably and enqueues a learn job in milliseconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis
from flask import Flask, Response, g, jsonify, request
from rq.job import Retry

from backend import metrics, queues, redis_conn, state
from backend.api.auth import basic_auth_ok, webhook_allowed
from backend.api.results_wait import JobFailed, JobTimeout, wait_for_result
from backend.calibration import agreement
from backend.maintenance import live_workers
from backend.calibration import store as calibration_store
from backend.labelconfig import LabelConfigError, parse_targets
from backend.settings import Settings, get_settings

log = logging.getLogger(__name__)

PREDICT_JOB = "backend.jobs.predict.predict_job"


class ApiError(Exception):
    """An error reply: HTTP status and a message that tells the caller what to do."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise ApiError(400, "request body is not valid JSON")
    if not isinstance(body, dict):
        raise ApiError(400, f"request body must be a JSON object, got {type(body).__name__}")
    return body


def _conn() -> redis.Redis:
    try:
        conn = redis_conn.durable()
        conn.ping()
        return conn
    except (redis.RedisError, OSError) as exc:
        raise ApiError(503, f"Redis is unreachable ({type(exc).__name__}); check REDIS_URL and that Redis runs") from exc


def _live_workers(conn: redis.Redis) -> int:
    """Workers on the interactive queue whose heartbeat is fresh (a killed one drops out in seconds)."""
    return len(live_workers(conn, queues.INTERACTIVE))


def create_app(settings: Settings | None = None) -> Flask:
    """The WSGI app (gunicorn runs it as ``backend.api.app:create_app()``)."""
    settings = settings or get_settings()
    app = Flask("lsclip")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.json.sort_keys = False

    @app.before_request
    def _start() -> Response | None:
        g.started = time.perf_counter()
        if request.path == "/webhook":
            if not webhook_allowed(request, settings):
                return _error(401, "webhook secret header or Basic auth required (see LSCLIP_WEBHOOK_SECRET)")
            return None
        if not basic_auth_ok(request, settings):
            response = _error(401, "Basic auth required: set the same user and password in Label Studio's ML backend settings")
            response.headers["WWW-Authenticate"] = 'Basic realm="lsclip"'
            return response
        return None

    @app.after_request
    def _record(response: Response) -> Response:
        started = g.get("started")
        if started is not None and request.endpoint:
            try:
                conn = redis_conn.durable()
                labels = {"endpoint": request.path, "status": str(response.status_code)}
                metrics.incr(conn, "lsclip_requests_total", 1, labels)
                metrics.observe(conn, "lsclip_request_latency_seconds", time.perf_counter() - started,
                                {"endpoint": request.path})
            except Exception:  # metrics never break a reply
                pass
        return response

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = _error(exc.status, exc.message, **exc.extra)
        if exc.status in (429, 503):
            response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(413)
    def _too_large(_exc) -> Response:
        return _error(413, f"request body over LSCLIP_MAX_REQUEST_BYTES={settings.max_request_bytes}")

    @app.errorhandler(404)
    def _not_found(_exc) -> Response:
        return _error(404, f"no such endpoint: {request.path}")

    @app.errorhandler(405)
    def _bad_method(_exc) -> Response:
        return _error(405, f"{request.method} is not allowed on {request.path}")

    @app.get("/")
    def index() -> Response:
        return jsonify({"name": "lsclip", "endpoints": ["/health", "/setup", "/predict", "/webhook", "/versions", "/metrics"]})

    @app.get("/health")
    def health() -> Response:
        try:
            conn = _conn()
            workers = _live_workers(conn)
            engine = state.engine_info(conn)
            error = state.engine_error(conn)
        except ApiError as exc:
            return _error(503, exc.message, status="DOWN")
        body: dict[str, Any] = {
            "status": "UP" if workers else "DOWN",
            "model_class": "lsclip",
            "model_version": state.engine_name(conn),
            "workers": workers,
            "engine": engine,
        }
        if engine.get("fallback_reason"):
            body["warning"] = "OFFLINE FALLBACK ENGINE: " + engine["fallback_reason"]
        if not workers:
            body["reason"] = "no worker is running: start one with `lsclip worker`"
            if error:
                body["reason"] += f"; last model load failed: {error}"
            return jsonify(body), 503
        return jsonify(body)

    @app.post("/setup")
    def setup() -> Response:
        body = _json_body()
        pid = state.project_id(body.get("project"))
        if not pid:
            raise ApiError(400, "missing 'project' (Label Studio sends '<id>.<timestamp>')")
        schema = body.get("schema") or ""
        if schema:
            try:
                parse_targets(schema)
            except LabelConfigError as exc:
                raise ApiError(400, str(exc)) from exc
        conn = _conn()
        state.save_project(conn, pid, schema, body.get("hostname") or "", body.get("access_token") or "")
        return jsonify({"model_version": state.model_version(conn, pid)})

    @app.post("/predict")
    def predict() -> Response:
        body = _json_body()
        tasks = body.get("tasks")
        if not isinstance(tasks, list):
            raise ApiError(400, "missing 'tasks': the body must hold a list of tasks, e.g. {\"tasks\": [{\"id\": 1, \"data\": {...}}]}")
        if len(tasks) > settings.max_tasks_per_request:
            raise ApiError(413, f"{len(tasks)} tasks in one request, over LSCLIP_MAX_TASKS={settings.max_tasks_per_request}; "
                           "select fewer tasks per \"retrieve predictions\" or raise the limit")
        pid = state.project_id(body.get("project"))
        conn = _conn()
        label_config = body.get("label_config") or state.load_project(conn, pid).get("label_config", "")
        try:
            parse_targets(label_config)
        except LabelConfigError as exc:
            raise ApiError(400, str(exc)) from exc
        if not tasks:
            return jsonify({"results": [], "model_version": state.model_version(conn, pid)})
        if not _live_workers(conn):
            raise ApiError(503, "no worker is running to predict: start one with `lsclip worker`"
                           + (f" (last model load failed: {state.engine_error(conn)})" if state.engine_error(conn) else ""))
        slim = [{"id": t.get("id"), "data": t.get("data")} if isinstance(t, dict) else {"id": None, "data": None}
                for t in tasks]
        queue = queues.queue(queues.INTERACTIVE, conn)
        if queue.count >= settings.max_queue:
            raise ApiError(429, f"the interactive queue holds {queue.count} requests (LSCLIP_MAX_QUEUE="
                           f"{settings.max_queue}); retry shortly or add workers")
        inflight = f"{state.P}project:{pid}:inflight"
        if int(conn.incr(inflight)) > settings.max_inflight_per_project:
            conn.decr(inflight)
            raise ApiError(429, f"project {pid} already has {settings.max_inflight_per_project} predictions in flight "
                           "(LSCLIP_MAX_INFLIGHT_PER_PROJECT); retry shortly, or use `lsclip preannotate` for bulk work")
        conn.expire(inflight, int(settings.predict_timeout_s) + 60)
        try:
            job = queue.enqueue_call(
                PREDICT_JOB, args=(pid, label_config, slim), timeout=settings.job_timeout_s,
                result_ttl=300, failure_ttl=24 * 3600, ttl=int(settings.predict_timeout_s),
                retry=Retry(max=1),
            )
            output = wait_for_result(job.id, redis_conn.waiting(), settings.predict_timeout_s)
        except JobTimeout as exc:
            raise ApiError(504, f"prediction did not finish within LSCLIP_PREDICT_TIMEOUT={settings.predict_timeout_s:.0f} s "
                           "(workers busy or too slow; add workers or lower the batch)") from exc
        except JobFailed as exc:
            raise ApiError(500, f"prediction failed: {exc}") from exc
        except (redis.RedisError, OSError) as exc:
            raise ApiError(503, f"lost Redis while waiting for the prediction ({type(exc).__name__})") from exc
        finally:
            try:
                conn.decr(inflight)
            except redis.RedisError:
                pass  # the key expires on its own
        return jsonify({"results": output["results"], "model_version": output["model_version"]})

    @app.post("/webhook")
    def webhook() -> Response:
        body = _json_body()
        action = body.get("action")
        if not isinstance(action, str) or not action:
            raise ApiError(400, "webhook payload has no 'action'")
        if action not in state.LEARN_ACTIONS:
            return jsonify({"status": "ignored", "action": action})
        _check_event(action, body)
        return jsonify(_record_event(action, body)), 201

    @app.post("/train")
    def train() -> Response:
        body = _json_body()
        if not state.project_id(body.get("project")):
            raise ApiError(400, "missing 'project': POST /train {\"project\": <id>}")
        event = {"action": state.TRAIN_ACTION, "project": body.get("project")}
        return jsonify(_record_event(state.TRAIN_ACTION, event)), 201

    @app.get("/versions")
    def versions() -> Response:
        conn = _conn()
        pid = request.args.get("project", "")
        if pid:
            name = state.engine_name(conn)
            revs = calibration_store.revisions(conn, pid)
            return jsonify({"versions": [f"{name}@r0"] + [f"{name}@r{r['revision']}" for r in revs], "revisions": revs})
        return jsonify({"versions": state.versions(conn)})

    @app.get("/agreement")
    def agreement_endpoint() -> Response:
        pid = request.args.get("project", "")
        if not pid:
            raise ApiError(400, "missing ?project=<id>")
        conn = _conn()
        return jsonify({"project": pid, "versions": agreement.summary(conn, pid),
                        "revisions": calibration_store.revisions(conn, pid)})

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        conn = _conn()
        depth = [({"queue": q.name}, float(q.count)) for q in queues.all_queues(conn)]
        ratios, totals = [], []
        for pid in agreement.all_projects(conn):
            for version, row in agreement.summary(conn, pid).items():
                totals.append(({"project": pid, "model_version": version}, float(row["total"])))
                if row["rate"] is not None:
                    ratios.append(({"project": pid, "model_version": version}, float(row["rate"])))
        gauges = {
            "lsclip_agreement_ratio": ratios,
            "lsclip_agreement_annotations": totals,
            "lsclip_queue_depth": depth,
            "lsclip_workers": [({}, float(len(live_workers(conn))))],
            "lsclip_events_pending": [({}, float(len(state.pending_events(conn))))],
        }
        return Response(metrics.render(conn, gauges), mimetype="text/plain; version=0.0.4")

    def _record_event(action: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = _conn()
        event_id = uuid.uuid4().hex
        event = _slim_event(action, body)
        state.record_event(conn, event_id, event)
        metrics.incr(conn, "lsclip_webhook_events_total", 1, {"action": action})
        queues.enqueue_learn(conn, event_id, settings.job_timeout_s)
        return {"status": "recorded", "event": event_id, "action": action}

    return app


def _check_event(action: str, body: dict[str, Any]) -> None:
    if state.project_id(body.get("project")) == "":
        raise ApiError(400, f"{action} payload has no 'project'")
    if action in state.ANNOTATION_ACTIONS:
        annotation = body.get("annotation")
        if not isinstance(annotation, dict) or annotation.get("id") is None:
            raise ApiError(400, f"{action} payload has no 'annotation' with an 'id'")
    if action == state.DELETE_ACTION and not isinstance(body.get("annotations"), list):
        raise ApiError(400, "ANNOTATIONS_DELETED payload has no 'annotations' list")


def _slim_event(action: str, body: dict[str, Any]) -> dict[str, Any]:
    """Keep what learning needs; drop the full project payload Label Studio attaches."""
    project = body.get("project")
    event: dict[str, Any] = {"action": action, "project": {"id": state.project_id(project)}, "received_at": time.time()}
    if isinstance(project, dict) and project.get("label_config"):
        event["label_config"] = project["label_config"]
    if "annotation" in body:
        event["annotation"] = body.get("annotation")
    if "annotations" in body:
        event["annotations"] = body.get("annotations")
    if isinstance(body.get("task"), dict):
        task = body["task"]
        event["task"] = {"id": task.get("id"), "data": task.get("data")}
    return event


def _error(code: int, message: str, **extra: Any) -> Response:
    response = jsonify({"error": message, **extra})
    response.status_code = code
    return response
