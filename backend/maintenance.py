"""Keeping the queues honest while workers come and go: liveness, abandoned jobs, due retries.

Every worker runs :class:`Maintainer`, a daemon thread that

- refreshes ``lsclip:alive:{worker}`` every ``BEAT_S`` (it expires after ``ALIVE_TTL_S``), so a worker
  killed with ``kill -9`` is known dead within seconds, not after RQ's job-timeout-long TTLs;
- puts jobs whose worker died back at the front of their queue (a job abandoned ``MAX_ABANDONS``
  times fails instead, with a message: it may be what kills workers);
- enqueues retries whose back-off interval has passed (RQ's scheduler would fork a process per
  worker; this is the same few Redis calls, under a lock so one worker does it per tick);
- gives a pending webhook event whose learn job is gone (never enqueued because Redis failed between
  the two writes, or expired) a new learn job, so a recorded event is always applied eventually.

Jobs are safe to run again: predict jobs are pure, learn jobs are idempotent by annotation id.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from rq import Worker
from rq.job import Job, JobStatus

from backend import queues
from backend.state import P

log = logging.getLogger(__name__)

BEAT_S = 2.0
ALIVE_TTL_S = 10
MAX_ABANDONS = 2
ORPHAN_AFTER_S = 60.0  # a pending event this old without a learn job gets one again


def alive_key(worker_name: str) -> str:
    return f"{P}alive:{worker_name}"


def beat(conn: redis.Redis, worker_name: str) -> None:
    conn.set(alive_key(worker_name), "1", ex=ALIVE_TTL_S)


def is_alive(conn: redis.Redis, worker_name: str) -> bool:
    return bool(worker_name) and bool(conn.exists(alive_key(worker_name)))


def requeue_abandoned(conn: redis.Redis) -> list[str]:
    """Jobs in a started registry whose worker is dead: back to the front of their queue (or failed)."""
    moved = []
    for queue in queues.all_queues(conn):
        registry = queue.started_job_registry
        for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
            job = Job.fetch_many([job_id], connection=conn)[0]
            if job is None:  # the job expired: drop its stale entry
                conn.zrem(registry.key, f"{job_id}:{execution_id}")
                continue
            if job.get_status(refresh=True) != JobStatus.STARTED or is_alive(conn, job.worker_name or ""):
                continue
            abandons = int(job.meta.get("lsclip_abandons", 0)) + 1
            job.meta["lsclip_abandons"] = abandons
            job.save_meta()
            with conn.pipeline() as pipe:
                registry.remove_executions(job, pipeline=pipe)
                if abandons > MAX_ABANDONS:
                    message = (f"the worker running this job died {abandons} times (killed, or out of memory); "
                               "the job is failed so it cannot take more workers down")
                    job.set_status(JobStatus.FAILED, pipeline=pipe)
                    job._handle_failure(message, pipe, worker_name="")
                    log.error("job %s: %s", job.id, message)
                else:
                    queue._enqueue_job(job, pipeline=pipe, at_front=True)
                    log.warning("job %s: its worker %s died; requeued at the front of %s", job.id, job.worker_name,
                                queue.name)
                pipe.execute()
            moved.append(job.id)
    return moved


def enqueue_due_retries(conn: redis.Redis) -> list[str]:
    """Retries whose interval has passed: from each queue's scheduled registry back into the queue."""
    moved = []
    now = time.time()
    for queue in queues.all_queues(conn):
        registry = queue.scheduled_job_registry
        job_ids = registry.get_jobs_to_schedule(int(now))
        if not job_ids:
            continue
        with conn.pipeline() as pipe:
            for job in Job.fetch_many(job_ids, connection=conn):
                if job is None:
                    continue
                queue._enqueue_job(job, pipeline=pipe, at_front=bool(job.enqueue_at_front))
                registry.remove(job, pipeline=pipe)
                moved.append(job.id)
            pipe.execute()
    return moved


def requeue_orphan_events(conn: redis.Redis, older_than_s: float = ORPHAN_AFTER_S) -> list[str]:
    """Pending events whose learn job is gone (never enqueued, or expired): enqueue it again."""
    from backend.settings import get_settings

    moved = []
    cutoff = time.time() - older_than_s
    for raw in conn.zrangebyscore(f"{P}events:pending", 0, cutoff):
        event_id = raw.decode()
        if not Job.exists(queues.learn_job_id(event_id), connection=conn):
            queues.enqueue_learn(conn, event_id, get_settings().job_timeout_s)
            log.warning("event %s was pending without a learn job; enqueued it again", event_id)
            moved.append(event_id)
    return moved


def live_workers(conn: redis.Redis, queue_name: str | None = None) -> list[Worker]:
    """Registered workers (of a queue) whose heartbeat is fresh: a killed worker drops out within seconds."""
    queue = queues.queue(queue_name, conn) if queue_name else None
    workers = Worker.all(connection=conn, queue=queue)
    if not workers:
        return []
    pipe = conn.pipeline(transaction=False)  # one round trip for every heartbeat (this runs on each /predict)
    for worker in workers:
        pipe.exists(alive_key(worker.name))
    return [w for w, alive in zip(workers, pipe.execute()) if alive]


def unregister_dead_workers(conn: redis.Redis) -> list[str]:
    """Remove RQ's registration of workers whose heartbeat stopped (RQ itself waits minutes)."""
    gone = []
    for worker in Worker.all(connection=conn):
        if not is_alive(conn, worker.name):
            worker.register_death()
            gone.append(worker.name)
    return gone


def tick(conn: redis.Redis) -> dict[str, list[str]]:
    """One round of maintenance, done by one worker at a time."""
    if not conn.set(f"{P}lock:maintenance", "1", nx=True, ex=max(1, int(BEAT_S))):
        return {}
    return {"requeued": requeue_abandoned(conn), "scheduled": enqueue_due_retries(conn),
            "dead_workers": unregister_dead_workers(conn), "orphan_events": requeue_orphan_events(conn)}


class Maintainer(threading.Thread):
    """The worker's background thread: heartbeat and queue maintenance, until the process exits."""

    def __init__(self, conn: redis.Redis, worker_name: str) -> None:
        super().__init__(name="lsclip-maintainer", daemon=True)
        self.conn = conn
        self.worker_name = worker_name
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                beat(self.conn, self.worker_name)
                tick(self.conn)
            except (redis.RedisError, OSError) as exc:
                log.warning("maintenance skipped: Redis unreachable (%s)", type(exc).__name__)
            except Exception:  # noqa: BLE001 - never let maintenance die silently
                log.exception("maintenance round failed")
            self.stopped.wait(BEAT_S)

    def stop(self) -> None:
        self.stopped.set()
