"""Bad input, each case with its expected answer, through the real api and a real worker.

Request-level problems are a 4xx that says what to fix; task-level problems (a broken image, a
missing key) fail that task alone: every other task of the same request still gets its prediction.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from backend.api.app import create_app
from backend.settings import load_settings
from tests.fileserver import FileServer
from tests.helpers import data_uri, image_bytes, single_config
from tests.test_images import _palette_gif_with_transparency, _png_16bit, _png_header_only

CONFIG = single_config(["red", "green", "blue"])


@pytest.mark.parametrize(
    "body, status, fragment",
    [
        ("{not json", 400, "not valid JSON"),
        ("", 400, "not valid JSON"),
        (json.dumps([1, 2]), 400, "JSON object"),
        (json.dumps({"project": "1"}), 400, "missing 'tasks'"),
        (json.dumps({"tasks": {"id": 1}, "label_config": CONFIG}), 400, "missing 'tasks'"),
        (json.dumps({"tasks": [{"id": 1}], "label_config": "this is not xml"}), 400, "not valid XML"),
        (json.dumps({"tasks": [{"id": 1}], "label_config": "<View"}), 400, "not valid XML"),
        (json.dumps({"tasks": [], "label_config": "<View><Image name='i' value='$i'/></View>"}), 400, "Supported"),
        (json.dumps({"tasks": [], "label_config": "<View><Image name='i' value='$i'/>"
                                                  "<Choices name='c' toName='i'></Choices></View>"}), 400, "Choice"),
        (json.dumps({"tasks": [], "label_config": "<View><Text name='t' value='$t'/>"
                                                  "<Choices name='c' toName='t'><Choice value='a'/></Choices></View>"}), 400, "Image"),
        (json.dumps({"tasks": [{"id": i, "data": {"image": "x"}} for i in range(10_000)], "label_config": CONFIG}),
         413, "LSCLIP_MAX_TASKS"),
    ],
    ids=["malformed-json", "empty-body", "json-array", "missing-tasks", "tasks-not-a-list", "config-not-xml",
         "config-unclosed", "no-servable-control", "empty-choices", "choices-on-text", "10000-tasks"],
)
def test_bad_predict_requests(app_client, body, status, fragment):
    reply = app_client.post("/predict", data=body, content_type="application/json")
    assert reply.status_code == status, reply.get_json()
    assert fragment in reply.get_json()["error"]


def test_a_body_over_the_size_limit_is_413(settings_env, worker, monkeypatch):
    monkeypatch.setenv("LSCLIP_MAX_REQUEST_BYTES", "1000")
    client = create_app(load_settings()).test_client()
    reply = client.post("/predict", json={"tasks": [{"id": 1, "data": {"image": "x" * 2000}}], "label_config": CONFIG})
    assert reply.status_code == 413 and "LSCLIP_MAX_REQUEST_BYTES" in reply.get_json()["error"]


@pytest.mark.parametrize(
    "payload, status, fragment",
    [
        ({"action": "PROJECT_UPDATED", "project": {"id": 1}}, 200, "ignored"),
        ({"action": "SOMETHING_NEW"}, 200, "ignored"),
        ({"project": {"id": 1}}, 400, "no 'action'"),
        ({"action": 42}, 400, "no 'action'"),
        ({"action": "ANNOTATION_CREATED", "project": {"id": 1}}, 400, "'annotation'"),
        ({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}}, 400, "no 'project'"),
        ({"action": "ANNOTATION_UPDATED", "project": {"id": 1}, "annotation": {"result": []}}, 400, "'id'"),
        ({"action": "ANNOTATIONS_DELETED", "project": {"id": 1}}, 400, "'annotations'"),
    ],
    ids=["known-ignored", "unknown-action", "no-action", "action-not-string", "annotation-missing",
         "project-missing", "annotation-without-id", "deleted-without-list"],
)
def test_bad_webhook_payloads(app_client, payload, status, fragment):
    reply = app_client.post("/webhook", json=payload)
    assert reply.status_code == status
    assert fragment in json.dumps(reply.get_json())


def _jpeg(size=(64, 48)) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def test_one_request_every_kind_of_image_each_task_alone(app_client, monkeypatch):
    good = _jpeg()
    files = {"/good.jpg": good, "/wide.png": image_bytes("PNG", size=(6000, 4)), "/html": b""}
    with FileServer(files) as server:
        # Label Studio's host (from /setup) is trusted by the URL policy
        assert app_client.post("/setup", json={"project": "41.1", "schema": CONFIG, "hostname": server.url,
                                               "access_token": ""}).status_code == 200
        cases = {
            # expected to predict
            "jpeg": data_uri(good),
            "png": data_uri(image_bytes("PNG"), "image/png"),
            "webp": data_uri(image_bytes("WEBP"), "image/webp"),
            "gif": data_uri(image_bytes("GIF", mode="P"), "image/gif"),
            "gif-transparent": data_uri(_palette_gif_with_transparency(), "image/gif"),
            "cmyk-jpeg": data_uri(image_bytes("JPEG", mode="CMYK", color=(0, 200, 200, 0))),
            "png-16bit": data_uri(_png_16bit(), "image/png"),
            "png-alpha": data_uri(image_bytes("PNG", mode="RGBA", color=(10, 200, 10, 60)), "image/png"),
            "one-pixel": data_uri(image_bytes("PNG", size=(1, 1)), "image/png"),
            "extreme-aspect": server.url + "/wide.png",
            "http-from-ls-host": server.url + "/good.jpg",
            # expected to fail alone
            "truncated-jpeg": data_uri(good[: len(good) // 2]),
            "corrupt-bytes": data_uri(b"\xff\xd8\xff" + b"garbage" * 50),
            "decompression-bomb": data_uri(_png_header_only(60_000, 60_000), "image/png"),
            "bad-base64": "data:image/jpeg;base64,@@@not-base64@@@",
            "http-404": server.url + "/missing.jpg",
            "http-html": server.url + "/html",
            "file-scheme": "file:///etc/passwd",
            "metadata-address": "http://169.254.169.254/latest/meta-data/",
            "not-a-string": 12345,
        }
        tasks = [{"id": i, "data": {"image": ref}} for i, ref in enumerate(cases.values())]
        tasks += [{"id": 900, "data": {"img": data_uri(good)}}, {"id": 901}, {"id": 902, "data": "not an object"}, "nonsense"]
        reply = app_client.post("/predict", json={"tasks": tasks, "project": "41.1", "label_config": CONFIG})
    assert reply.status_code == 200, reply.get_json()
    results = reply.get_json()["results"]
    assert len(results) == len(tasks), "exactly one prediction per task, in order"
    names = list(cases) + ["unknown-data-key", "no-data", "data-not-object", "task-not-object"]
    outcome = {name: bool(r["result"]) for name, r in zip(names, results)}
    should_work = ["jpeg", "png", "webp", "gif", "gif-transparent", "cmyk-jpeg", "png-16bit", "png-alpha", "one-pixel",
                   "extreme-aspect", "http-from-ls-host"]
    assert {n: outcome[n] for n in should_work} == dict.fromkeys(should_work, True)
    should_fail = [n for n in names if n not in should_work]
    assert {n: outcome[n] for n in should_fail} == dict.fromkeys(should_fail, False)
    for r in results:
        assert 0.0 <= r["score"] <= 1.0 and r["model_version"]
