"""Queue maintenance on a real Redis with no worker attached: orphan events, due retries, dead workers."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import redis
from rq import Queue, Worker

from backend import maintenance, queues, state
from tests.conftest import RedisServer


@pytest.fixture()
def conn(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield redis.Redis.from_url(server.url)
    server.stop()


def test_a_pending_event_without_a_learn_job_gets_one(conn):
    state.record_event(conn, "e1", {"action": "ANNOTATION_CREATED", "project": {"id": 3}, "annotation": {"id": 1}})
    assert maintenance.requeue_orphan_events(conn) == [], "a fresh event is left to its own job"
    conn.zadd("lsclip:events:pending", {"e1": time.time() - 120})
    assert maintenance.requeue_orphan_events(conn) == ["e1"]
    assert Queue(queues.LEARN, connection=conn).job_ids == ["learn-e1"]
    assert maintenance.requeue_orphan_events(conn) == [], "its job exists now: not enqueued twice"


def test_retries_due_are_enqueued_and_later_ones_wait(conn):
    q = Queue(queues.LEARN, connection=conn)
    due = q.enqueue_at(datetime.now(timezone.utc) - timedelta(seconds=1), "backend.jobs.learn.learn_job", "x")
    later = q.enqueue_at(datetime.now(timezone.utc) + timedelta(hours=1), "backend.jobs.learn.learn_job", "y")
    assert maintenance.enqueue_due_retries(conn) == [due.id]
    assert q.job_ids == [due.id] and later.id in q.scheduled_job_registry.get_job_ids()


def test_workers_without_a_heartbeat_are_not_counted_and_are_unregistered(conn):
    alive = Worker([Queue(queues.INTERACTIVE, connection=conn)], connection=conn, name="alive-one")
    dead = Worker([Queue(queues.INTERACTIVE, connection=conn)], connection=conn, name="dead-one")
    alive.register_birth()
    dead.register_birth()
    maintenance.beat(conn, "alive-one")
    assert [w.name for w in maintenance.live_workers(conn, queues.INTERACTIVE)] == ["alive-one"]
    assert maintenance.unregister_dead_workers(conn) == ["dead-one"]
    assert [w.name for w in Worker.all(connection=conn)] == ["alive-one"]


def test_one_worker_at_a_time_runs_a_maintenance_round(conn):
    assert maintenance.tick(conn) != {}
    assert maintenance.tick(conn) == {}, "the round's lock is held for BEAT_S"


def test_worker_queue_selection_keeps_priority_order_and_refuses_unknown_names():
    assert queues.selected("bulk,interactive") == ("lsclip-interactive", "lsclip-bulk")
    assert queues.selected("lsclip-learn") == ("lsclip-learn",)
    with pytest.raises(ValueError, match="choose from interactive, learn, bulk"):
        queues.selected("fast")


def _start_on_a_dead_worker(conn, queue: Queue, job) -> None:
    """Put ``job`` in the state a worker killed mid-job leaves it: STARTED, registered, heartbeat gone."""
    from rq.executions import Execution
    from rq.job import JobStatus

    job.worker_name = "ghost-worker"
    job.save()
    with conn.pipeline() as pipe:
        Execution.create(job, ttl=600, pipeline=pipe, worker_name="ghost-worker")
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    conn.lrem(queue.key, 0, job.id)


def test_an_abandoned_job_is_requeued_then_failed_when_it_keeps_killing_workers(conn):
    from rq.job import JobStatus
    from rq.results import Result

    q = Queue(queues.INTERACTIVE, connection=conn)
    job = q.enqueue("backend.jobs.predict.predict_job", "1", "<View/>", [])
    for attempt in range(1, maintenance.MAX_ABANDONS + 1):
        _start_on_a_dead_worker(conn, q, job)
        assert maintenance.requeue_abandoned(conn) == [job.id]
        assert q.job_ids == [job.id] and job.get_status(refresh=True) == JobStatus.QUEUED, f"abandon {attempt}: requeued"
        assert q.started_job_registry.get_job_ids(cleanup=False) == []
    _start_on_a_dead_worker(conn, q, job)
    assert maintenance.requeue_abandoned(conn) == [job.id]
    assert job.get_status(refresh=True) == JobStatus.FAILED and q.job_ids == []
    result = Result.fetch_latest(job)
    assert result.type == Result.Type.FAILED and "died 3 times" in result.exc_string, "the /predict waiter gets a reason"


def test_a_job_of_a_live_worker_is_left_alone(conn):
    q = Queue(queues.LEARN, connection=conn)
    job = q.enqueue("backend.jobs.learn.learn_job", "e9")
    _start_on_a_dead_worker(conn, q, job)
    maintenance.beat(conn, "ghost-worker")  # it is alive after all
    assert maintenance.requeue_abandoned(conn) == []
    assert q.started_job_registry.get_job_ids(cleanup=False) == [job.id]
