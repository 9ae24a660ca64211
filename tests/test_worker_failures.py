"""A worker whose model cannot load exits with a message naming the setting; the api stays up and says why."""

from __future__ import annotations

import redis

from backend.api.app import create_app
from backend.settings import load_settings
from tests.conftest import RedisServer, start_worker


def test_bad_model_setting_exits_the_worker_and_health_says_why(base_env, tmp_path, monkeypatch):
    from backend import redis_conn
    from backend.settings import reset_settings

    server = RedisServer(tmp_path)
    server.start()
    try:
        env = {**base_env, "REDIS_URL": server.url, "LSCLIP_MODEL": str(tmp_path / "no-such-model")}
        worker = start_worker(env, tmp_path, name="broken-worker")
        assert worker.proc.wait(120) == 3
        assert "LSCLIP_MODEL=" in worker.output()
        worker.stop()
        assert b"LSCLIP_MODEL=" in redis.Redis.from_url(server.url).get("lsclip:engine:error")

        monkeypatch.setenv("REDIS_URL", server.url)
        reset_settings()
        redis_conn.reset_connections()
        client = create_app(load_settings()).test_client()
        health = client.get("/health")
        assert health.status_code == 503
        assert "last model load failed: LSCLIP_MODEL=" in health.get_json()["reason"]
    finally:
        reset_settings()
        redis_conn.reset_connections()
        server.stop()
