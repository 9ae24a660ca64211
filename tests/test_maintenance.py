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
