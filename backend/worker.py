"""``lsclip worker``: an RQ worker that loads the engine once and runs every job in-process.

RQ's default worker forks a work horse per job, which throws the loaded model away and
cannot work after CUDA is initialised. This worker is a ``SimpleWorker`` (jobs run in the
worker process), loads the engine *before* taking work so the first annotator does not
wait, and publishes what it loaded so ``/health`` and ``model_version`` can say so.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid

import redis
from rq import SimpleWorker
from rq.exceptions import StopRequested

from backend import metrics, queues, redis_conn, runtime, state
from backend.engines import EngineLoadError, load_engine
from backend.maintenance import Maintainer, beat
from backend.settings import get_settings

log = logging.getLogger(__name__)

EXIT_MODEL_LOAD_FAILED = 3


class ResidentWorker(SimpleWorker):
    """A ``SimpleWorker`` whose jobs share the process's resident engine."""


def run_worker(burst: bool = False, name: str | None = None, queue_names: tuple[str, ...] = queues.PRIORITY) -> int:
    """Load the engine, then work ``queue_names`` in priority order until stopped; returns an exit code."""
    settings = get_settings()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    conn = redis_conn.durable()
    try:
        engine = load_engine(settings)
    except EngineLoadError as exc:
        message = str(exc)
        log.error("worker cannot start: %s", message)
        state.record_engine_error(conn, message)
        return EXIT_MODEL_LOAD_FAILED
    runtime.set_engine(engine)
    info = engine.describe()
    state.publish_engine(conn, info)
    metrics.incr(conn, "lsclip_model_loads_total")
    if engine.fallback_reason:
        log.warning("OFFLINE FALLBACK ENGINE IN USE: %s", engine.fallback_reason)
    log.info("engine ready: %s", info)
    worker_name = name or f"lsclip-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    maintainer = Maintainer(redis_conn.connect(redis_conn.url()), worker_name)
    beat(maintainer.conn, worker_name)  # alive before the first job can start
    maintainer.start()
    try:
        return _work(conn, maintainer, worker_name, queue_names, burst, settings.log_level)
    finally:
        maintainer.stop()


def _work(conn: redis.Redis, maintainer: Maintainer, base_name: str, queue_names: tuple[str, ...], burst: bool,
          log_level: str) -> int:
    """Run the RQ work loop; when Redis fails under it, wait for Redis and go on under a new worker name.

    RQ's loop survives Redis outages only while it waits for a job: one that hits a job's bookkeeping
    makes it quit. The model stays loaded here; the new name lets maintenance see the old one's job as
    abandoned (its heartbeat stops) and run it again.
    """
    attempt = 0
    while True:
        name = base_name if attempt == 0 else f"{base_name}-r{attempt}"
        maintainer.worker_name = name
        if attempt:
            try:
                beat(maintainer.conn, name)  # alive under the new name before it can take a job
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # Redis went again: the work loop below waits for it, the maintainer beats every 2 s
        worker = ResidentWorker([queues.queue(q, conn) for q in queue_names], connection=conn, name=name,
                                log_job_description=False)
        try:
            worker.work(burst=burst, logging_level=log_level, with_scheduler=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.error("worker %s: lost Redis (%s)", name, exc)
        except StopRequested:
            return 0
        if burst or _stopping(worker):
            return 0
        log.error("worker %s stopped after a Redis failure; going on as a new worker once Redis answers", name)
        try:
            _wait_for_redis(conn, worker)
        except StopRequested:
            return 0
        if _stopping(worker):
            return 0
        attempt += 1


def _stopping(worker: ResidentWorker) -> bool:
    """Did a signal ask this worker to stop? (RQ's loop returns the same way after a crash.)"""
    return worker._shutdown_requested_date is not None or worker._stop_requested


def _wait_for_redis(conn: redis.Redis, worker: ResidentWorker) -> None:
    delay = 0.5
    while not _stopping(worker):
        try:
            conn.ping()
            return
        except (redis.ConnectionError, redis.TimeoutError):
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_worker())
