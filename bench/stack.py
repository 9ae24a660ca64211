"""The service stack the service benchmarks start: a private redis-server and the environment of its processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` until truthy; exit the benchmark with ``what`` when it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def start_redis(workdir: Path) -> tuple[subprocess.Popen, str, redis.Redis]:
    """A throwaway redis-server on a free loopback port: (process, URL, client), answering."""
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    conn = redis.Redis.from_url(url)
    wait_for(conn.ping, 10, "redis")
    return proc, url, conn


def service_env(redis_url: str, model_dir: Path) -> dict[str, str]:
    """Environment of the api and worker processes: this Redis, this model, no offline fallback, quiet logs."""
    return {**os.environ, "REDIS_URL": redis_url, "LSCLIP_MODEL": str(model_dir), "PYTHONPATH": str(ROOT),
            "LSCLIP_FALLBACK_OFFLINE": "false", "LOG_LEVEL": "WARNING", "OMP_WAIT_POLICY": "PASSIVE"}
