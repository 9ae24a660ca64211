"""The protocol endpoints against a real Redis and a real RQ worker process."""

from __future__ import annotations

import json

import pytest
import redis
import requests
from rq import Queue

from backend import state
from backend.api.app import create_app
from backend.settings import load_settings
from tests.conftest import shared_images, wait_until
from tests.fileserver import LEGACY, FileServer
from tests.helpers import basic_auth, data_uri, file_uri, single_config

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _predict(client, tasks, config, project="7.1700000000"):
    return client.post("/predict", json={"tasks": tasks, "project": project, "label_config": config, "params": {}})


def _photo_tasks(n: int, start_id: int = 1) -> list[dict]:
    return [{"id": start_id + i, "data": {"image": file_uri(path)}} for i, (path, _) in enumerate(shared_images(per_class=1)[:n])]


def test_health_reports_redis_worker_and_engine(app_client):
    reply = app_client.get("/health")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["status"] == "UP" and body["workers"] >= 1
    assert body["model_version"] == "tiny-clip" and body["engine"]["model"].endswith("tiny-clip")


def test_setup_is_idempotent_and_records_the_project(app_client, settings_env):
    payload = {"project": "3.1795751307", "schema": single_config(CIFAR), "hostname": "http://ls.example:8080",
               "access_token": "tok-123456", "extra_params": None}
    first = app_client.post("/setup", json=payload)
    second = app_client.post("/setup", json=payload)
    assert first.status_code == second.status_code == 200
    assert first.get_json() == second.get_json() == {"model_version": "tiny-clip@r0"}
    conn = redis.Redis.from_url(settings_env["REDIS_URL"])
    context = state.load_project(conn, "3")
    assert context["hostname"] == "http://ls.example:8080" and context["label_config"] == payload["schema"]


def test_setup_refuses_an_unservable_config_with_a_fix(app_client):
    reply = app_client.post("/setup", json={"project": "4.1", "schema": "<View><Image name='i' value='$i'/></View>"})
    assert reply.status_code == 400
    assert "Supported: <Choices>, <Taxonomy>" in reply.get_json()["error"]


def test_predict_one_result_per_task_in_order_with_a_broken_image_in_the_middle(app_client):
    tasks = _photo_tasks(4)
    tasks.insert(2, {"id": 99, "data": {"image": data_uri(b"\xff\xd8\xff\xe0 this is not a jpeg")}})
    reply = _predict(app_client, tasks, single_config(CIFAR))
    assert reply.status_code == 200
    results = reply.get_json()["results"]
    assert len(results) == 5
    assert results[2]["result"] == [] and results[2]["score"] == 0.0
    for i, prediction in enumerate(results):
        assert prediction["model_version"] == "tiny-clip@r0"
        assert 0.0 <= prediction["score"] <= 1.0
        if i == 2:
            continue
        (region,) = prediction["result"]
        assert region["from_name"] == "label" and region["to_name"] == "image" and region["type"] == "choices"
        assert region["value"]["choices"][0] in CIFAR
        assert region["score"] == pytest.approx(prediction["score"])


def test_identical_images_give_identical_predictions(app_client):
    task = _photo_tasks(1)[0]
    reply = _predict(app_client, [task, dict(task, id=2)], single_config(CIFAR)).get_json()["results"]
    assert reply[0]["result"] == reply[1]["result"]


def test_multi_choice_two_targets_and_predicted_values(app_client):
    config = (
        '<View><Image name="left" value="$a"/><Image name="right" value="$b"/>'
        '<Choices name="tags" toName="left" choice="multiple">'
        + "".join(f'<Choice value="{c}"/>' for c in CIFAR)
        + '</Choices><Choices name="kind" toName="right">'
        '<Choice value="Animal" predicted_values="cat,dog,bird,horse"/><Choice value="Vehicle" predicted_values="car,truck,ship"/>'
        "</Choices></View>"
    )
    photos = shared_images(per_class=1)
    tasks = [{"id": 1, "data": {"a": file_uri(photos[0][0]), "b": file_uri(photos[3][0])}}]
    (prediction,) = _predict(app_client, tasks, config).get_json()["results"]
    by_name = {r["from_name"]: r for r in prediction["result"]}
    assert set(by_name) == {"tags", "kind"}
    assert by_name["tags"]["to_name"] == "left" and by_name["kind"]["to_name"] == "right"
    assert set(by_name["tags"]["value"]["choices"]) <= set(CIFAR) and by_name["tags"]["value"]["choices"]
    assert by_name["kind"]["value"]["choices"][0] in ("Animal", "Vehicle")  # values, never the synonyms
    assert prediction["score"] == pytest.approx(min(r["score"] for r in prediction["result"]))


def test_taxonomy_reports_the_best_leaf_path(app_client):
    config = (
        '<View><Image name="image" value="$image"/><Taxonomy name="tax" toName="image">'
        '<Choice value="Animal"><Choice value="cat"/><Choice value="dog"/></Choice>'
        '<Choice value="Vehicle"><Choice value="truck"/><Choice value="ship"/></Choice></Taxonomy></View>'
    )
    (prediction,) = _predict(app_client, _photo_tasks(1), config).get_json()["results"]
    (region,) = prediction["result"]
    assert region["type"] == "taxonomy"
    (path,) = region["value"]["taxonomy"]
    assert path in (["Animal", "cat"], ["Animal", "dog"], ["Vehicle", "truck"], ["Vehicle", "ship"])


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ("{not json", 400, "not valid JSON"),
        (json.dumps({"project": "1"}), 400, "missing 'tasks'"),
        (json.dumps({"tasks": [], "label_config": "<View><Image name='i' value='$i'/></View>"}), 400, "Supported"),
        (json.dumps({"tasks": [{"id": 1}], "label_config": "<View"}), 400, "not valid XML"),
        (json.dumps([1, 2]), 400, "JSON object"),
    ],
)
def test_predict_bad_requests_get_clear_4xx(app_client, body, status, fragment):
    reply = app_client.post("/predict", data=body, content_type="application/json")
    assert reply.status_code == status
    assert fragment in reply.get_json()["error"]


def test_task_without_the_image_key_fails_alone(app_client):
    tasks = _photo_tasks(1) + [{"id": 5, "data": {"other": "x"}}, {"id": 6}]
    results = _predict(app_client, tasks, single_config(CIFAR)).get_json()["results"]
    assert len(results) == 3 and results[0]["result"] and results[1]["result"] == [] and results[2]["result"] == []


def test_too_many_tasks_is_refused_with_a_hint(app_client, settings_env, monkeypatch):
    monkeypatch.setenv("LSCLIP_MAX_TASKS", "3")
    client = create_app(load_settings()).test_client()
    reply = _predict(client, [{"id": i, "data": {"image": "x"}} for i in range(4)], single_config(CIFAR))
    assert reply.status_code == 413 and "LSCLIP_MAX_TASKS=3" in reply.get_json()["error"]


def test_worker_keeps_the_model_loaded_across_jobs(worker, settings_env):
    conn = redis.Redis.from_url(settings_env["REDIS_URL"])
    queue = Queue("lsclip-interactive", connection=conn)
    outputs = []
    for i in range(3):
        job = queue.enqueue("backend.jobs.predict.predict_job", "8", single_config(CIFAR), _photo_tasks(1, start_id=i))
        outputs.append(wait_until(job.latest_result, 60, "the predict job").return_value)
    assert {o["worker"] for o in outputs} == {outputs[0]["worker"]}
    assert [o["model_loads"] for o in outputs] == [1, 1, 1]
    assert worker.output().count("loaded ") == 1


def test_a_known_image_is_scored_from_the_embedding_cache_not_re_encoded(worker, settings_env):
    conn = redis.Redis.from_url(settings_env["REDIS_URL"])
    queue = Queue("lsclip-interactive", connection=conn)
    (path, _), = shared_images("imagenette-eval", per_class=1)[-1:]
    task = [{"id": 1, "data": {"image": file_uri(path)}}]
    runs = []
    for _ in range(2):
        job = queue.enqueue("backend.jobs.predict.predict_job", "13", single_config(CIFAR), task)
        runs.append(wait_until(job.latest_result, 60, "the predict job").return_value)
    assert (runs[0]["encoded"], runs[0]["cache_hits"]) == (1, 0)
    assert (runs[1]["encoded"], runs[1]["cache_hits"]) == (0, 1)
    assert runs[0]["results"] == runs[1]["results"]


def test_label_studio_upload_urls_use_the_setup_host_and_token(app_client):
    (path, _), = shared_images(per_class=1)[:1]
    with FileServer({"/data/upload/9/abc-cat.jpg": path.read_bytes()}) as ls:
        setup = {"project": "9.17", "schema": single_config(CIFAR), "hostname": ls.url, "access_token": LEGACY}
        assert app_client.post("/setup", json=setup).status_code == 200
        tasks = [{"id": 1, "data": {"image": "/data/upload/9/abc-cat.jpg"}}]
        (prediction,) = _predict(app_client, tasks, single_config(CIFAR), project="9.17").get_json()["results"]
        assert prediction["result"][0]["value"]["choices"][0] in CIFAR
        assert ls.requests[-1] == ("/data/upload/9/abc-cat.jpg", f"Token {LEGACY}")


def test_webhook_events_are_recorded_and_applied(app_client, settings_env):
    conn = redis.Redis.from_url(settings_env["REDIS_URL"])
    event = {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 11, "label_config": single_config(CIFAR)},
        "task": {"id": 5, "data": {"image": "/data/upload/11/x.jpg"}},
        "annotation": {"id": 501, "task": 5, "was_cancelled": False,
                       "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}]},
    }
    reply = app_client.post("/webhook", json=event)
    assert reply.status_code == 201 and reply.get_json()["status"] == "recorded"
    wait_until(lambda: "501" in state.annotations(conn, "11"), 30, "the learn job to apply the annotation")
    assert state.annotations(conn, "11")["501"]["labels"] == {"label": ["cat"]}
    assert app_client.post("/webhook", json=event).status_code == 201  # replayed: same record, no duplicate
    wait_until(lambda: not state.pending_events(conn), 30, "pending events to drain")
    assert list(state.annotations(conn, "11")) == ["501"]
    deleted = {"action": "ANNOTATIONS_DELETED", "project": {"id": 11}, "annotations": [{"id": 501}]}
    assert app_client.post("/webhook", json=deleted).status_code == 201
    wait_until(lambda: "501" not in state.annotations(conn, "11"), 30, "the deletion to apply")
    assert app_client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 11}}).status_code == 201
    assert state.events_received(conn)["ANNOTATION_CREATED"] >= 2


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"action": "PROJECT_UPDATED", "project": {"id": 1}}, 200),
        ({"action": "SOMETHING_NEW"}, 200),
        ({"project": {"id": 1}}, 400),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}}, 400),
        ({"action": "ANNOTATION_CREATED", "annotation": {"id": 3}}, 400),
        ({"action": "ANNOTATIONS_DELETED", "project": {"id": 1}}, 400),
    ],
)
def test_webhook_unknown_actions_are_ignored_and_incomplete_ones_refused(app_client, payload, status):
    assert app_client.post("/webhook", json=payload).status_code == status


def test_versions_and_metrics(app_client):
    _predict(app_client, _photo_tasks(1), single_config(CIFAR))
    assert "tiny-clip@r0" in app_client.get("/versions").get_json()["versions"]
    text = app_client.get("/metrics").get_data(as_text=True)
    for name in ("lsclip_requests_total{", "lsclip_request_latency_seconds_bucket{", "lsclip_images_encoded_total",
                 "lsclip_image_errors_total", 'lsclip_queue_depth{queue="lsclip-interactive"}', "lsclip_model_loads_total 1"):
        assert name in text


def test_basic_auth_on_every_protocol_endpoint_when_configured(settings_env, worker, monkeypatch):
    monkeypatch.setenv("BASIC_AUTH_USER", "ls")
    monkeypatch.setenv("BASIC_AUTH_PASS", "s3cret-pass")
    client = create_app(load_settings()).test_client()
    for method, path in (("get", "/health"), ("post", "/setup"), ("post", "/predict"), ("get", "/versions"),
                         ("get", "/metrics"), ("post", "/webhook")):
        assert getattr(client, method)(path, json={}).status_code == 401, path
        assert getattr(client, method)(path, json={}, headers=basic_auth("ls", "wrong")).status_code == 401, path
    assert client.get("/health", headers=basic_auth("ls", "s3cret-pass")).status_code == 200
    ok = client.post("/setup", json={"project": "1.1", "schema": single_config(CIFAR)}, headers=basic_auth("ls", "s3cret-pass"))
    assert ok.status_code == 200


def test_basic_auth_off_by_default(app_client):
    assert app_client.get("/health").status_code == 200


def test_no_worker_means_unhealthy_and_fast_predict_failure(redis_server, settings_env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url.replace("/0", "/3"))  # a DB no worker listens on
    from backend import redis_conn
    from backend.settings import reset_settings

    reset_settings()
    redis_conn.reset_connections()
    client = create_app(load_settings()).test_client()
    health = client.get("/health")
    assert health.status_code == 503 and "lsclip worker" in health.get_json()["reason"]
    reply = _predict(client, [{"id": 1, "data": {"image": "x"}}], single_config(CIFAR))
    assert reply.status_code == 503 and "no worker" in reply.get_json()["error"]


def test_real_socket_gunicorn_api(api_server):
    assert requests.get(api_server + "/health", timeout=1).status_code == 200
    reply = requests.post(api_server + "/predict", timeout=60, json={
        "tasks": _photo_tasks(2), "project": "12.1", "label_config": single_config(CIFAR), "params": {}})
    assert reply.status_code == 200
    assert [len(r["result"]) for r in reply.json()["results"]] == [1, 1]
