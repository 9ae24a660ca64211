"""Shared fixtures: a private real Redis, a tiny CLIP built offline, real worker and api processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LSCLIP_SHARED_DATA", ROOT.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until truthy or fail with ``what``."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported below
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


class RedisServer:
    """A private redis-server on a free loopback port (real Redis, restartable)."""

    def __init__(self, workdir: Path, appendonly: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed; .ci/run installs it")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        wait_until(lambda: client.ping(), 10, "redis-server to answer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> Path:
    """A random-weight CLIP saved with save_pretrained; loads with HF_HUB_OFFLINE=1."""
    from backend.engines.random_clip import build_random_clip

    return build_random_clip(tmp_path_factory.mktemp("tiny-clip") / "tiny-clip", size="tiny")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lsclip-cache")


@pytest.fixture(scope="session")
def base_env(redis_server, tiny_clip, cache_dir) -> dict[str, str]:
    """Environment for every lsclip process of the session."""
    env = {
        "REDIS_URL": redis_server.url,
        "LSCLIP_MODEL": str(tiny_clip),
        "LSCLIP_CACHE_DIR": str(cache_dir),
        "LSCLIP_FALLBACK_OFFLINE": "false",
        "LSCLIP_TORCH_THREADS": "1",
        "LSCLIP_PREDICT_TIMEOUT": "60",
        "HF_HUB_OFFLINE": "1",
    }
    return env


@pytest.fixture()
def settings_env(base_env, monkeypatch) -> Iterator[dict[str, str]]:
    """Apply ``base_env`` to this process and reset cached settings and connections."""
    from backend import redis_conn
    from backend.settings import reset_settings

    for key, value in base_env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    redis_conn.reset_connections()
    yield base_env
    reset_settings()
    redis_conn.reset_connections()


class Proc:
    """A child process with its log file, stopped by PID at teardown."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
                                     start_new_session=True)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.log.close()


def child_env(base_env: dict[str, str], **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LSCLIP_", "BASIC_AUTH_", "LABEL_STUDIO_"))}
    env.update(base_env)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def start_worker(base_env: dict[str, str], log_dir: Path, name: str = "worker", **extra: str) -> Proc:
    return Proc([sys.executable, "-m", "backend.cli", "worker", "--name", f"{name}-{os.getpid()}-{time.time_ns()}"],
                child_env(base_env, **extra), log_dir / f"{name}.log")


def wait_for_worker(redis_url: str, proc: Proc, timeout: float = 90) -> None:
    from rq import Worker

    client = redis.Redis.from_url(redis_url)

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"worker exited early:\n{proc.output()[-3000:]}")
        return Worker.count(connection=client) > 0 and bool(client.hgetall("lsclip:engine"))

    wait_until(ready, timeout, "the worker to load its model")


@pytest.fixture(scope="session")
def worker(base_env, tmp_path_factory) -> Iterator[Proc]:
    """One real RQ worker process with the tiny CLIP resident, for the whole session."""
    client = redis.Redis.from_url(base_env["REDIS_URL"])
    client.flushdb()
    proc = start_worker(base_env, tmp_path_factory.mktemp("logs"))
    try:
        wait_for_worker(base_env["REDIS_URL"], proc)
    except AssertionError:
        proc.stop()
        raise
    yield proc
    proc.stop()


@pytest.fixture()
def app_client(settings_env, worker):
    from backend.api.app import create_app

    app = create_app()
    app.testing = True
    return app.test_client()


@pytest.fixture(scope="session")
def api_server(base_env, worker, tmp_path_factory) -> Iterator[str]:
    """``lsclip api`` (gunicorn) on a free loopback port, over a real socket."""
    port = free_port()
    proc = Proc([sys.executable, "-m", "backend.cli", "api", "--port", str(port), "--processes", "1", "--threads", "8"],
                child_env(base_env), tmp_path_factory.mktemp("api-logs") / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(url + "/health", timeout=1).status_code == 200, 60, "the api to answer /health")
    except AssertionError:
        print(proc.output())
        proc.stop()
        raise
    yield url
    proc.stop()


def shared_images(folder: str = "cifar10-eval", per_class: int = 2) -> list[tuple[Path, str]]:
    """(path, label) pairs from ../shared/data, a few per class, in a stable order."""
    import csv

    root = SHARED_DATA / folder
    if not root.exists():
        pytest.skip(f"shared data not found at {root}")
    seen: dict[str, int] = {}
    out = []
    with open(root / "labels.csv") as fh:
        for row in csv.DictReader(fh):
            if seen.get(row["label"], 0) < per_class:
                seen[row["label"]] = seen.get(row["label"], 0) + 1
                out.append((root / row["path"], row["label"]))
    return out


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    """A real Label Studio 1.23.2 for the e2e tests (installed into its own venv on first use)."""
    from tests.label_studio import LabelStudio

    server = LabelStudio(tmp_path_factory.mktemp("label-studio"), free_port())
    started = time.monotonic()
    server.start()
    print(f"Label Studio up in {time.monotonic() - started:.1f} s")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ls_client(label_studio):
    from label_studio_sdk.client import LabelStudio as LabelStudioClient

    return LabelStudioClient(base_url=label_studio.url, api_key=label_studio.token)


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Expose each phase's report on the test item (fixtures print logs when the call failed)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)
