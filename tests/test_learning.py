"""Learning from corrections end to end on the service: real Redis, a real worker with the offline engine,
webhook events in, calibrated predictions and new model versions out."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import redis
from PIL import Image

from backend import state
from backend.calibration import store
from tests.conftest import RedisServer, shared_images, start_worker, wait_for_worker, wait_until
from tests.helpers import data_uri, single_config

CLASSES = ["cat", "dog", "truck", "ship"]
PID = "21"


@pytest.fixture(scope="module")
def offline_backend(base_env, tmp_path_factory) -> Iterator[dict]:
    server = RedisServer(tmp_path_factory.mktemp("learn-redis"))
    server.start()
    env = {**base_env, "REDIS_URL": server.url, "LSCLIP_MODEL": "offline"}
    worker = start_worker(env, tmp_path_factory.mktemp("learn-logs"), name="learn-worker")
    try:
        wait_for_worker(server.url, worker, timeout=180)
        yield {"env": env, "worker": worker, "conn": redis.Redis.from_url(server.url)}
    finally:
        worker.stop()
        server.stop()


@pytest.fixture()
def client(offline_backend, monkeypatch):
    from backend import redis_conn
    from backend.api.app import create_app
    from backend.settings import reset_settings

    for key, value in offline_backend["env"].items():
        monkeypatch.setenv(key, value)
    reset_settings()
    redis_conn.reset_connections()
    yield create_app().test_client()
    reset_settings()
    redis_conn.reset_connections()


def _near_duplicate(path) -> str:
    """The same photo re-encoded at another JPEG quality, 1 px cropped: a different file, nearly the same image."""
    image = Image.open(path).convert("RGB")
    image = image.crop((1, 0, image.width, image.height))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return data_uri(buf.getvalue())


def _predict(client, tasks):
    reply = client.post("/predict", json={"tasks": tasks, "project": f"{PID}.1", "label_config": single_config(CLASSES)})
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()["results"]


def _label(prediction) -> str:
    return prediction["result"][0]["value"]["choices"][0]


def _event(annotation_id: int, task_id: int, image: str, label: str, action: str = "ANNOTATION_CREATED") -> dict:
    return {
        "action": action,
        "project": {"id": int(PID), "label_config": single_config(CLASSES)},
        "task": {"id": task_id, "data": {"image": image}},
        "annotation": {"id": annotation_id, "task": task_id, "was_cancelled": False,
                       "result": [{"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}]},
    }


def _settled(conn) -> bool:
    return not state.pending_events(conn, PID)


def test_corrections_change_predictions_bump_the_version_and_are_idempotent(client, offline_backend):
    conn = offline_backend["conn"]
    assert client.post("/setup", json={"project": f"{PID}.1", "schema": single_config(CLASSES)}).get_json() == \
        {"model_version": "offline-conse-lite0@r0"}
    pool = [(p, label) for p, label in shared_images("cifar10-pool", per_class=12) if label in CLASSES]
    tasks = [{"id": 1000 + i, "data": {"image": data_uri(p.read_bytes())}} for i, (p, _) in enumerate(pool)]
    before = _predict(client, tasks)
    assert {p["model_version"] for p in before} == {"offline-conse-lite0@r0"}
    wrong = [i for i, (p, label) in enumerate(pool) if _label(before[i]) != label]
    assert len(wrong) >= 6, "the zero-shot engine gets enough of these wrong to learn from"

    # annotators correct every task (right ones confirmed, wrong ones fixed)
    for i, (_, label) in enumerate(pool):
        reply = client.post("/webhook", json=_event(5000 + i, 1000 + i, tasks[i]["data"]["image"], label))
        assert reply.status_code == 201
    wait_until(lambda: _settled(conn) and state.revision(conn, PID) >= 1, 180, "the corrections to be learned")
    revision = state.revision(conn, PID)
    calibration = store.load(conn, PID, "offline-conse-lite0")["label"]
    assert calibration.layer != "zero-shot"
    assert calibration.stats["cv_top1"] >= calibration.stats["cv_top1_zero_shot"]

    # near-duplicates of the corrected photos are now predicted as the annotators said, with the new version
    dupes = [{"id": 2000 + i, "data": {"image": _near_duplicate(pool[i][0])}} for i in wrong]
    after = _predict(client, dupes)
    assert {p["model_version"] for p in after} == {f"offline-conse-lite0@r{revision}"}
    fixed = sum(_label(p) == pool[i][1] for p, i in zip(after, wrong))
    assert fixed >= 0.6 * len(wrong), f"{fixed}/{len(wrong)} corrected photos now right"
    assert f"offline-conse-lite0@r{revision}" in client.get(f"/versions?project={PID}").get_json()["versions"]

    # agreement was counted against the version each task was shown with
    agreement = client.get(f"/agreement?project={PID}").get_json()["versions"]["offline-conse-lite0@r0"]
    assert agreement["total"] == len(pool) and agreement["agree"] == len(pool) - len(wrong)

    # a replayed event changes nothing: same support set, same revision, agreement counted once
    support = len(state.annotations(conn, PID))
    client.post("/webhook", json=_event(5000, 1000, tasks[0]["data"]["image"], pool[0][1]))
    wait_until(lambda: _settled(conn), 60, "the replay to be applied")
    assert len(state.annotations(conn, PID)) == support and state.revision(conn, PID) == revision
    assert client.get(f"/agreement?project={PID}").get_json()["versions"]["offline-conse-lite0@r0"]["total"] == len(pool)

    # a deleted annotation is forgotten: it leaves the support set and the calibration is refitted
    client.post("/webhook", json={"action": "ANNOTATIONS_DELETED", "project": {"id": int(PID)},
                                  "annotations": [{"id": 5000 + wrong[0]}]})
    wait_until(lambda: _settled(conn) and state.revision(conn, PID) > revision, 120, "the deletion to refit")
    assert str(5000 + wrong[0]) not in state.annotations(conn, PID)
    assert len(state.annotations(conn, PID)) == support - 1


def test_calibration_export_import_round_trip(client, offline_backend, tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT, child_env

    conn = offline_backend["conn"]
    if state.revision(conn, PID) == 0:
        pytest.skip("needs the learning test's project")
    env = child_env(offline_backend["env"])
    out = tmp_path / "cal.json"
    subprocess.run([sys.executable, "-m", "backend.cli", "calibration", "export", "--project", PID, str(out)],
                   env=env, cwd=ROOT, check=True, timeout=60)
    blob = json.loads(out.read_text())
    assert blob["format"] == "lsclip-calibration/1" and blob["support"] and blob["calibration"]["engine"] == "offline-conse-lite0"
    done = subprocess.run([sys.executable, "-m", "backend.cli", "calibration", "import", "--project", "77", str(out)],
                          env=env, cwd=ROOT, check=True, timeout=60, capture_output=True, text=True)
    assert json.loads(done.stdout)["revision"] == 1
    assert len(state.annotations(conn, "77")) == len(blob["support"])
    assert store.load(conn, "77", "offline-conse-lite0")["label"].layer == blob["calibration"]["targets"]["label"]["layer"]
