"""Security: the URL allow-list, the webhook secret, limits, and secrets kept out of logs and replies."""

from __future__ import annotations

import logging

import pytest
import redis

from backend.api.app import create_app
from backend.images.errors import ImageError
from backend.images.url_policy import UrlPolicy
from backend.settings import load_settings
from tests.fileserver import FileServer
from tests.helpers import basic_auth, single_config

CONFIG = single_config(["red", "green", "blue"])
LS_TOKEN = "ls-legacy-token-SECRET-4711"
PASSWORD = "basic-pass-SECRET-0815"
WEBHOOK_SECRET = "webhook-SECRET-1234"


def test_only_label_studio_hosts_and_the_allow_list_are_fetched():
    policy = UrlPolicy(["http://ls.internal:8080"], ())
    policy.check("http://ls.internal:8080/data/upload/1/a.jpg")  # Label Studio's own host, even if private
    with pytest.raises(ImageError, match="neither Label Studio's nor in LSCLIP_ALLOWED_HOSTS"):
        policy.check("http://93.184.216.34/cat.jpg")  # a public address nobody listed
    with pytest.raises(ImageError, match="non-public"):
        policy.check("http://10.1.2.3/x.jpg")
    UrlPolicy([], ("*",)).check("http://93.184.216.34/cat.jpg")  # '*': any public host
    with pytest.raises(ImageError, match="non-public"):
        UrlPolicy([], ("*",)).check("http://169.254.169.254/latest/meta-data/")  # '*' never opens private ranges
    UrlPolicy([], ("10.1.2.3",)).check("http://10.1.2.3/x.jpg")  # a private host listed by name
    with pytest.raises(ImageError, match="non-public"):
        UrlPolicy([], ("10.1.2.3:80",)).check("http://10.1.2.3:8080/x.jpg")  # another port is another host
    with pytest.raises(ImageError, match="scheme"):
        UrlPolicy([], ("*",)).check("file:///etc/passwd")


def test_webhook_needs_the_shared_secret_when_configured(settings_env, worker, monkeypatch):
    monkeypatch.setenv("LSCLIP_WEBHOOK_SECRET", WEBHOOK_SECRET)
    client = create_app(load_settings()).test_client()
    event = {"action": "PROJECT_UPDATED", "project": {"id": 1}}
    assert client.post("/webhook", json=event).status_code == 401
    wrong = client.post("/webhook", json=event, headers={"X-Lsclip-Webhook-Secret": "guess"})
    assert wrong.status_code == 401 and "guess" not in wrong.get_data(as_text=True)
    assert client.post("/webhook", json=event, headers={"X-Lsclip-Webhook-Secret": WEBHOOK_SECRET}).status_code == 200


def test_per_project_in_flight_limit_is_a_429_with_retry_after(settings_env, worker, monkeypatch):
    monkeypatch.setenv("LSCLIP_MAX_INFLIGHT_PER_PROJECT", "2")
    client = create_app(load_settings()).test_client()
    conn = redis.Redis.from_url(settings_env["REDIS_URL"])
    conn.set("lsclip:project:55:inflight", 2, ex=60)  # two requests of project 55 are being served
    try:
        body = {"tasks": [{"id": 1, "data": {"image": "data:,"}}], "project": "55.1", "label_config": CONFIG}
        busy = client.post("/predict", json=body)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "5"
        assert "LSCLIP_MAX_INFLIGHT_PER_PROJECT" in busy.get_json()["error"]
        assert int(conn.get("lsclip:project:55:inflight")) == 2, "a refused request holds no slot"
        other = client.post("/predict", json={**body, "project": "56.1"})
        assert other.status_code == 200, "other projects are not affected"
        conn.set("lsclip:project:55:inflight", 1, ex=60)
        assert client.post("/predict", json=body).status_code == 200
        assert int(conn.get("lsclip:project:55:inflight")) == 1, "the slot is given back when the reply is sent"
    finally:
        conn.delete("lsclip:project:55:inflight")


def test_tokens_and_passwords_never_reach_logs_or_replies(settings_env, worker, monkeypatch, caplog):
    monkeypatch.setenv("BASIC_AUTH_USER", "ls")
    monkeypatch.setenv("BASIC_AUTH_PASS", PASSWORD)
    monkeypatch.setenv("LSCLIP_WEBHOOK_SECRET", WEBHOOK_SECRET)
    client = create_app(load_settings()).test_client()
    auth = basic_auth("ls", PASSWORD)
    caplog.set_level(logging.DEBUG)
    replies = []
    with FileServer({}) as server:  # Label Studio stand-in: every upload path answers 401 for this token
        replies.append(client.post("/setup", headers=auth, json={"project": "77.1", "schema": CONFIG,
                                                                 "hostname": server.url, "access_token": LS_TOKEN}))
        tasks = [{"id": 1, "data": {"image": "/data/upload/77/missing.jpg"}},
                 {"id": 2, "data": {"image": server.url + "/nope.jpg"}}]
        replies.append(client.post("/predict", headers=auth, json={"tasks": tasks, "project": "77.1", "label_config": CONFIG}))
        assert any(auth_header == f"Token {LS_TOKEN}" for _, auth_header in server.requests), "the token was used"
    replies.append(client.get("/health", headers=basic_auth("ls", "wrong-" + PASSWORD)))
    replies.append(client.post("/webhook", json={"action": "X"}, headers={"X-Lsclip-Webhook-Secret": "x" + WEBHOOK_SECRET}))
    replies.append(client.get("/versions", headers=auth))
    replies.append(client.get("/metrics", headers=auth))
    assert [r.status_code for r in replies] == [200, 200, 401, 401, 200, 200]
    assert all(r["result"] == [] for r in replies[1].get_json()["results"])
    texts = [r.get_data(as_text=True) for r in replies] + [caplog.text, worker.output()]
    for secret in (LS_TOKEN, PASSWORD, WEBHOOK_SECRET):
        assert not [t for t in texts if secret in t], f"{secret} leaked"
