"""Faults with nothing lost: a worker killed mid-job, Redis restarted under a running service.

Real Redis (AOF on, as in docker-compose), two real workers, the real api under gunicorn, and a
loopback image server whose ``/slow*`` images take 3 s, so a job is surely running when its worker
is killed with SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest
import redis
import requests
from rq import Worker

from backend import state
from backend.maintenance import live_workers
from tests.conftest import Proc, RedisServer, child_env, free_port, start_worker, wait_for_worker, wait_until
from tests.fileserver import FileServer
from tests.helpers import image_bytes, single_config

CLASSES = ["red", "green", "blue"]
CONFIG = single_config(CLASSES)

pytestmark = pytest.mark.timeout(300)


class Cluster:
    def __init__(self, tmp, base_env, files: FileServer) -> None:
        self.tmp = tmp
        self.redis = RedisServer(tmp, appendonly=True)
        self.redis.start()
        self.files = files
        self.env = {**base_env, "REDIS_URL": self.redis.url, "LSCLIP_ALLOWED_HOSTS": f"127.0.0.1:{files.port}",
                    "LSCLIP_PREDICT_TIMEOUT": "60"}
        self.conn = redis.Redis.from_url(self.redis.url)
        self.workers: list[Proc] = []
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.api = Proc([sys.executable, "-m", "backend.cli", "api", "--port", str(port), "--processes", "1"],
                        child_env(self.env), tmp / "api.log")
        self.ensure_workers(2)
        wait_until(lambda: requests.get(self.url + "/health", timeout=2).status_code == 200, 60, "the api")
        requests.post(self.url + "/setup", json={"project": "1.1", "schema": CONFIG, "hostname": "", "access_token": ""},
                      timeout=5).raise_for_status()

    def ensure_workers(self, n: int) -> None:
        self.workers = [w for w in self.workers if w.alive()]
        while len(self.workers) < n:
            proc = start_worker(self.env, self.tmp, name=f"w{len(self.workers)}-{time.time_ns()}")
            wait_for_worker(self.redis.url, proc, timeout=120)
            self.workers.append(proc)
        wait_until(lambda: Worker.count(connection=self.conn) >= n, 30, f"{n} workers registered")

    def kill_worker_running_a_job(self, timeout: float = 30) -> int:
        """SIGKILL the worker that is executing a job; returns its pid."""
        def busy():
            for w in Worker.all(connection=self.conn):
                if w.get_current_job_id():
                    return w
            return None
        worker = wait_until(busy, timeout, "a worker to start the job", interval=0.05)
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: not any(p.alive() and p.proc.pid == worker.pid for p in self.workers), 10, "the kill")
        return worker.pid

    def logs(self) -> str:
        return "\n".join(f"--- {w.log_path.name} ---\n{w.output()[-2000:]}" for w in self.workers) + \
            f"\n--- api ---\n{self.api.output()[-2000:]}"

    def stop(self) -> None:
        self.api.stop()
        for w in self.workers:
            w.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def cluster(base_env, tmp_path_factory):
    files = {f"/slow{i}": image_bytes(color=(30 * i % 255, 90, 200)) for i in range(10)}
    with FileServer(files) as server:
        c = Cluster(tmp_path_factory.mktemp("faults"), base_env, server)
        yield c
        c.stop()


def _predict_in_background(url: str, body: dict) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def call():
        started = time.monotonic()
        try:
            reply = requests.post(url + "/predict", json=body, timeout=100)
            out.update(status=reply.status_code, body=reply.json())
        except Exception as exc:  # noqa: BLE001 - reported by the test
            out.update(error=repr(exc))
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=call)
    thread.start()
    return thread, out


def test_worker_killed_mid_predict_the_job_is_rerun_and_the_caller_answered(cluster):
    cluster.ensure_workers(2)
    body = {"tasks": [{"id": 1, "data": {"image": cluster.files.url + "/slow1"}}], "project": "1.1", "label_config": CONFIG}
    thread, out = _predict_in_background(cluster.url, body)
    killed = cluster.kill_worker_running_a_job()
    thread.join(100)
    assert out.get("status") == 200, (out, cluster.logs())
    (result,) = out["body"]["results"]
    assert result["result"][0]["value"]["choices"][0] in CLASSES, "answered by the surviving worker"
    assert out["seconds"] < 40, f"answered after {out['seconds']:.1f} s: well before Label Studio's 100 s"
    wait_until(lambda: killed not in [w.pid for w in live_workers(cluster.conn)], 15, "the dead worker to drop out")
    assert requests.get(cluster.url + "/health", timeout=5).json()["workers"] == 1


def test_worker_killed_mid_learn_the_event_is_applied_exactly_once(cluster):
    cluster.ensure_workers(2)
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 1, "label_config": CONFIG},
             "annotation": {"id": 501, "task": 11, "result": [
                 {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["blue"]}}]},
             "task": {"id": 11, "data": {"image": cluster.files.url + "/slow2"}}}
    assert requests.post(cluster.url + "/webhook", json=event, timeout=5).status_code == 201
    cluster.kill_worker_running_a_job()
    wait_until(lambda: not state.pending_events(cluster.conn, "1") and "501" in state.annotations(cluster.conn, "1"),
               90, "the learn event to be applied by the surviving worker")
    records = state.annotations(cluster.conn, "1")
    assert list(records) == ["501"] and records["501"]["labels"] == {"label": ["blue"]}
    assert state.events_received(cluster.conn) == {"ANNOTATION_CREATED": 1}
    # the survivor releases the lock after its refit; the dead worker's lock had expired (30 s TTL, not renewed)
    wait_until(lambda: not cluster.conn.exists("lsclip:lock:learn:1"), 30, "the project's learn lock to be free")


def test_redis_restart_fails_fast_then_recovers_without_restarts_and_keeps_durable_state(cluster):
    cluster.ensure_workers(2)
    event = {"action": "ANNOTATION_CREATED", "project": {"id": 1},
             "annotation": {"id": 777, "task": 12, "result": [
                 {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["red"]}}]},
             "task": {"id": 12, "data": {"image": cluster.files.url + "/slow3"}}}
    assert requests.post(cluster.url + "/webhook", json=event, timeout=5).status_code == 201
    cluster.redis.stop()
    started = time.monotonic()
    health = requests.get(cluster.url + "/health", timeout=10)
    assert health.status_code == 503 and "Redis is unreachable" in health.json()["error"]
    body = {"tasks": [{"id": 2, "data": {"image": cluster.files.url + "/slow4"}}], "project": "1.1", "label_config": CONFIG}
    reply = requests.post(cluster.url + "/predict", json=body, timeout=10)
    assert reply.status_code == 503 and "Redis" in reply.json()["error"]
    assert requests.post(cluster.url + "/webhook", json=event, timeout=10).status_code == 503
    assert time.monotonic() - started < 10, "every request failed fast"
    time.sleep(3)

    cluster.redis.start()  # same port and data dir: the AOF is replayed
    api_pid = cluster.api.proc.pid
    worker_pids = [w.proc.pid for w in cluster.workers]
    wait_until(lambda: requests.get(cluster.url + "/health", timeout=2).status_code == 200, 60,
               "health to recover once Redis is back")
    reply = requests.post(cluster.url + "/predict", json=body, timeout=100)
    assert reply.status_code == 200 and reply.json()["results"][0]["result"], reply.text
    assert cluster.api.proc.pid == api_pid and cluster.api.alive()
    assert all(w.alive() for w in cluster.workers) and [w.proc.pid for w in cluster.workers] == worker_pids
    wait_until(lambda: "777" in state.annotations(cluster.conn, "1"), 60, "the event recorded before the restart")
    assert state.load_project(cluster.conn, "1")["label_config"] == CONFIG, "project context survived (AOF)"
