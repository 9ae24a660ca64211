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
import uuid

from rq import SimpleWorker

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
    worker = ResidentWorker([queues.queue(q, conn) for q in queue_names], connection=conn, name=worker_name, log_job_description=False)
    maintainer = Maintainer(redis_conn.connect(redis_conn.url()), worker_name)
    beat(maintainer.conn, worker_name)  # alive before the first job can start
    maintainer.start()
    try:
        worker.work(burst=burst, logging_level=settings.log_level, with_scheduler=False)
    finally:
        maintainer.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_worker())
