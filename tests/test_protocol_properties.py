"""Property-based tests of the protocol endpoints against docs/openapi.yaml.

Hypothesis generates request bodies — arbitrary JSON and near-valid protocol payloads — and every
reply must carry a status the OpenAPI description lists for that operation, JSON errors that say
something, and, for a 200 from /predict, exactly one well-formed prediction per task.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.helpers import data_uri, image_bytes, single_config

SPEC = yaml.safe_load(Path(ROOT / "docs" / "openapi.yaml").read_text())
CONFIG = single_config(["red", "green", "blue"])
GOOD = data_uri(image_bytes())

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
image_refs = st.one_of(
    st.text(max_size=30), st.just(GOOD), st.sampled_from([
        "data:image/png;base64,!!!", "data:,", "file:///etc/passwd", "http://169.254.169.254/x", "/data/upload/1/x.jpg",
        "ftp://example.com/a.jpg", "http://[::1]:9/x.jpg"]),
    json_values,
)
tasks = st.one_of(
    json_values,
    st.fixed_dictionaries({"id": st.one_of(st.integers(0, 10**6), st.none(), st.text(max_size=5)),
                           "data": st.one_of(json_values, st.fixed_dictionaries({"image": image_refs}))}),
)
configs = st.one_of(st.just(CONFIG), st.sampled_from(["", "<View>", "not xml", "<View><Image name='i' value='$i'/></View>"]),
                    st.text(max_size=40))
predict_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"tasks": st.lists(tasks, max_size=4)},
                          optional={"project": st.one_of(st.just("1.1"), st.text(max_size=8), json_values),
                                    "label_config": configs, "params": json_values}),
)
setup_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"project": st.one_of(st.sampled_from(["901.1", "902"]), json_values)},
                          optional={"schema": configs, "hostname": st.sampled_from(["", "http://127.0.0.1:9"]),
                                    "access_token": st.text(max_size=10)}),
)
actions = st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING",
                           "PROJECT_UPDATED", "TASKS_CREATED", "", "??"])
webhook_bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"action": st.one_of(actions, json_values)},
                          optional={"project": st.one_of(st.fixed_dictionaries({"id": st.sampled_from([903, "903"])}),
                                                         json_values),
                                    "annotation": st.one_of(json_values, st.fixed_dictionaries({"id": st.integers(1, 99)})),
                                    "annotations": json_values}),
)


def documented(path: str, method: str) -> set[int]:
    return {int(code) for code in SPEC["paths"][path][method]["responses"]}


def check_reply(path: str, method: str, reply, body=None) -> None:
    assert reply.status_code in documented(path, method), (reply.status_code, reply.get_data(as_text=True)[:300])
    if reply.status_code >= 400:
        error = reply.get_json()["error"]
        assert isinstance(error, str) and len(error) > 10
    if path == "/predict" and reply.status_code == 200:
        results = reply.get_json()["results"]
        assert len(results) == len(body["tasks"])
        for prediction in results:
            assert set(prediction) >= {"result", "score", "model_version"} and 0.0 <= prediction["score"] <= 1.0


def test_the_openapi_description_covers_exactly_the_apps_endpoints(app_client):
    from backend.api.app import create_app

    rules = {r.rule for r in create_app().url_map.iter_rules() if r.endpoint != "static"} - {"/"}
    assert set(SPEC["paths"]) == rules
    for path, ops in SPEC["paths"].items():
        for op in ops.values():
            assert op["responses"], path


FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(body=predict_bodies)
def test_predict_answers_any_body_as_documented(app_client, body):
    check_reply("/predict", "post", app_client.post("/predict", json=body), body)


@FAST
@given(body=setup_bodies)
def test_setup_answers_any_body_as_documented(app_client, body):
    check_reply("/setup", "post", app_client.post("/setup", json=body))


@FAST
@given(body=webhook_bodies)
def test_webhook_answers_any_body_as_documented(app_client, body):
    check_reply("/webhook", "post", app_client.post("/webhook", json=body))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
@pytest.mark.parametrize("path", ["/predict", "/setup", "/webhook", "/train"])
def test_raw_bytes_never_break_an_endpoint(app_client, path, raw):
    check_reply(path, "post", app_client.post(path, data=raw, content_type="application/json"))
