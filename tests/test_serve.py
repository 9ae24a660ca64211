"""`lsclip serve`: api + worker + embedded Redis from one command, and the offline fallback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest
import requests

from tests.conftest import Proc, child_env, free_port, shared_images, wait_until
from tests.helpers import data_uri, file_uri, single_config

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@contextmanager
def _serving(tmp_path, base_env, **extra) -> Iterator[tuple[Proc, str]]:
    """``lsclip serve`` up and healthy; on exit it is stopped by SIGTERM and must leave nothing behind."""
    before = _redis_servers()
    proc, url = _serve(tmp_path, base_env, **extra)
    try:
        yield proc, url
    finally:
        try:
            if proc.alive():
                _stop_and_check_children(proc, before)
        finally:
            proc.stop()


def _serve(tmp_path, base_env, **extra) -> tuple[Proc, str]:
    port = free_port()
    env = child_env({k: v for k, v in base_env.items() if k != "REDIS_URL"},
                    LSCLIP_EMBEDDED_REDIS=str(tmp_path / "redis.db"), **extra)
    env.pop("REDIS_URL", None)
    proc = Proc([sys.executable, "-m", "backend.cli", "serve", "--port", str(port)], env, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=1).status_code == 200, 120, "lsclip serve to be healthy")
    except AssertionError:
        print(proc.output()[-4000:])
        proc.stop()
        raise
    return proc, url


def _redis_servers() -> set[int]:
    return {p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")}


def _stop_and_check_children(proc: Proc, redis_before: set[int]) -> None:
    children = psutil.Process(proc.proc.pid).children(recursive=True)
    embedded = [psutil.Process(pid) for pid in _redis_servers() - redis_before]
    assert embedded, "serve started an embedded Redis"
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(30) == 0
    _, alive = psutil.wait_procs(children + embedded, timeout=15)
    assert not alive, f"left behind: {[c.cmdline() for c in alive]}"


def test_serve_runs_everything_with_an_embedded_redis(tmp_path, base_env):
    with _serving(tmp_path, base_env) as (proc, url):
        config = single_config(CIFAR)
        setup = requests.post(url + "/setup", json={"project": "1.1", "schema": config, "hostname": "", "access_token": ""}, timeout=3)
        assert setup.json() == {"model_version": "tiny-clip@r0"}
        photos = [p for p, _ in shared_images(per_class=1)[:5]]
        tasks = [{"id": i, "data": {"image": file_uri(p)}} for i, p in enumerate(photos)]
        tasks.insert(2, {"id": 100, "data": {"image": data_uri(photos[0].read_bytes()[:200])}})  # truncated JPEG
        reply = requests.post(url + "/predict", json={"tasks": tasks, "project": "1.1", "label_config": config}, timeout=60)
        results = reply.json()["results"]
        assert len(results) == 6 and results[2]["result"] == []
        assert all(r["result"][0]["value"]["choices"][0] in CIFAR for i, r in enumerate(results) if i != 2)
        assert "lsclip_image_errors_total 1" in requests.get(url + "/metrics", timeout=3).text

        # the other lsclip commands find the embedded Redis without REDIS_URL
        env = child_env({k: v for k, v in base_env.items() if k != "REDIS_URL"}, LSCLIP_EMBEDDED_REDIS=str(tmp_path / "redis.db"))
        env.pop("REDIS_URL", None)
        done = subprocess.run([sys.executable, "-m", "backend.cli", "agreement", "--project", "1"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["project"] == "1"
    assert not (tmp_path / "redis.db.url").exists(), "the marker goes with the server"


@pytest.mark.slow
def test_serve_default_model_without_a_hub_falls_back_loudly_to_the_offline_engine(tmp_path, base_env):
    env = {k: v for k, v in base_env.items() if k not in ("LSCLIP_MODEL", "LSCLIP_FALLBACK_OFFLINE")}
    with _serving(tmp_path, env) as (proc, url):
        health = requests.get(url + "/health", timeout=1).json()
        assert health["model_version"].startswith("offline-")
        assert "OFFLINE FALLBACK ENGINE" in health["warning"]
        setup = requests.post(url + "/setup", json={"project": "2.1", "schema": single_config(CIFAR)}, timeout=3).json()
        assert setup["model_version"].startswith("offline-") and setup["model_version"].endswith("@r0")
        assert "FALLING BACK TO THE OFFLINE ENGINE" in proc.output()
