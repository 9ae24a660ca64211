"""A real Label Studio 1.23.2 for end-to-end tests: installed into its own venv when missing,
started headless on a free loopback port with the settings a local ML backend needs, stopped by PID.

Settings (see ../shared/reference/label-studio-protocol.md): legacy tokens on, ML_BLOCK_LOCAL_IP and
SSRF protection off (so a 127.0.0.1 backend and its webhook work), version check and telemetry off,
its own data dir and HOME.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis
import requests

from tests.conftest import Proc, RedisServer, child_env, free_port, start_worker, wait_for_worker, wait_until

log = logging.getLogger(__name__)

LS_VERSION = "1.23.2"
LS_VENV = Path(os.environ.get("LSCLIP_LS_VENV", Path.home() / ".cache" / "lsclip" / "ls-venv"))
TOKEN = "lsclip-e2e-legacy-token-0123456789"
EMAIL = "admin@example.com"
PASSWORD = "lsclip-e2e-pass-123"


def ensure_label_studio(timeout_s: float = 900) -> Path:
    """The label-studio executable, installing label-studio==1.23.2 into its own venv if missing."""
    exe = LS_VENV / "bin" / "label-studio"
    if exe.exists():
        return exe
    log.info("installing label-studio==%s into %s (one-time, 1-3 min)", LS_VERSION, LS_VENV)
    if LS_VENV.exists():
        shutil.rmtree(LS_VENV)
    LS_VENV.parent.mkdir(parents=True, exist_ok=True)
    python = shutil.which("python3.11") or shutil.which("python3") or sys.executable
    subprocess.run([python, "-m", "venv", str(LS_VENV)], check=True, timeout=120)
    subprocess.run([str(LS_VENV / "bin" / "pip"), "install", "-q", f"label-studio=={LS_VERSION}"], check=True, timeout=timeout_s)
    return exe


class LabelStudio:
    """One Label Studio process with a throwaway data dir."""

    def __init__(self, workdir: Path, port: int, **overrides: str) -> None:
        self.workdir = workdir
        self.port = port
        self.overrides = overrides  # settings that differ from the local-test defaults below
        self.url = f"http://127.0.0.1:{port}"
        self.token = TOKEN
        self.log_path = workdir / "label-studio.log"
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        data = self.workdir / "data"
        home = self.workdir / "home"
        data.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {
            **keep,
            "HOME": str(home),
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            "LABEL_STUDIO_HOST": self.url,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "ML_BLOCK_LOCAL_IP": "false",
            "SSRF_PROTECTION_ENABLED": "false",
            "LATEST_VERSION_CHECK": "false",
            "COLLECT_ANALYTICS": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
            "ML_TIMEOUT_PREDICT": "100",
            "PYTHONUNBUFFERED": "1",
            **self.overrides,
        }

    def start(self, timeout_s: float = 240) -> None:
        exe = ensure_label_studio()
        log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(self.port),
             "--username", EMAIL, "--password", PASSWORD, "--user-token", TOKEN, "--enable-legacy-api-token",
             "--log-level", "WARNING"],
            env=self.env(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {self.proc.returncode}:\n{self.logs()[-4000:]}")
            try:
                if requests.get(self.url + "/health/", timeout=2).status_code == 200 and self._token_ok():
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        raise RuntimeError(f"Label Studio not up after {timeout_s:.0f} s:\n{self.logs()[-4000:]}")

    def _token_ok(self) -> bool:
        reply = requests.get(self.url + "/api/current-user/whoami", headers=self.headers(), timeout=5)
        return reply.status_code == 200

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    # -- small API helpers the SDK does not cover (multipart upload) --------------------
    def upload(self, project_id: int, files: list[Path]) -> list[int]:
        """Upload image files as tasks (task data becomes a /data/upload/... URL); returns task ids.

        Sent 50 files per request: Django refuses more than 100 files in one request.
        """
        task_ids: list[int] = []
        for start in range(0, len(files), 50):
            part = files[start:start + 50]
            handles = [(f"file{i}", (f.name, f.read_bytes(), "image/jpeg")) for i, f in enumerate(part)]
            reply = requests.post(f"{self.url}/api/projects/{project_id}/import?return_task_ids=true",
                                  headers=self.headers(), files=handles, timeout=120)
            reply.raise_for_status()
            task_ids += list(reply.json()["task_ids"])
        if len(task_ids) != len(files):
            raise AssertionError(f"uploaded {len(files)} files but Label Studio made {len(task_ids)} tasks")
        return task_ids


class Backend:
    """api + worker on their own Redis, as a user would run them."""

    def __init__(self, tmp, base_env: dict[str, str], model: str, **extra_env: str) -> None:
        self.redis = RedisServer(tmp)
        self.redis.start()
        self.env = {**base_env, "REDIS_URL": self.redis.url, "LSCLIP_MODEL": model, **extra_env}
        self.worker = start_worker(self.env, tmp, name="e2e-worker")
        wait_for_worker(self.redis.url, self.worker, timeout=180)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.api = Proc([sys.executable, "-m", "backend.cli", "api", "--port", str(port), "--processes", "1"],
                        child_env(self.env), tmp / "api.log")
        wait_until(lambda: requests.get(self.url + "/health", timeout=1).status_code == 200, 60, "the backend api")
        self.conn = redis.Redis.from_url(self.redis.url)

    def logs(self) -> str:
        return f"--- worker ---\n{self.worker.output()[-3000:]}\n--- api ---\n{self.api.output()[-3000:]}"

    def stop(self) -> None:
        self.api.stop()
        self.worker.stop()
        self.redis.stop()
