"""End to end: a real Label Studio 1.23.2 talking to this backend (api + worker + Redis), over HTTP.

Run with ``pytest -m e2e``. Label Studio is installed into its own venv on first use.
"""

from __future__ import annotations

import time

import pytest
import requests
from label_studio_sdk.client import LabelStudio as LabelStudioClient

from backend import state
from tests.conftest import shared_images, wait_until
from tests.helpers import file_uri, single_config
from tests.label_studio import Backend, LabelStudio

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGENETTE = ["tench", "English springer", "cassette player", "chain saw", "church", "French horn",
              "garbage truck", "gas pump", "golf ball", "parachute"]


def _backend(request, tmp_path_factory, base_env, model: str) -> Backend:
    backend = Backend(tmp_path_factory.mktemp("backend"), base_env, model)
    request.addfinalizer(backend.stop)
    return backend


@pytest.fixture()
def dump_logs_on_failure(request, label_studio):
    holder: list[Backend] = []
    yield holder
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print("--- label studio ---\n" + label_studio.logs()[-4000:])
        for backend in holder:
            print(backend.logs())


def _retrieve_predictions(label_studio: LabelStudio, project_id: int) -> None:
    reply = requests.post(f"{label_studio.url}/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
                          headers=label_studio.headers(), json={"selectedItems": {"all": True, "excluded": []}}, timeout=200)
    assert reply.status_code == 200, reply.text


def _predictions(ls_client: LabelStudioClient, task_id: int) -> list:
    return list(ls_client.predictions.list(task=task_id))


def _connect(ls_client: LabelStudioClient, project_id: int, backend: Backend):
    ml = ls_client.ml.create(project=project_id, url=backend.url, title="lsclip", is_interactive=True)
    webhooks = [w for w in ls_client.webhooks.list(project=project_id) if (w.url or "").startswith(backend.url)]
    assert webhooks, "Label Studio created the backend's webhook (SSRF protection off)"
    return ml


def test_single_choice_project_end_to_end(request, label_studio, ls_client, base_env, tmp_path_factory, dump_logs_on_failure):
    backend = _backend(request, tmp_path_factory, base_env, base_env["LSCLIP_MODEL"])
    dump_logs_on_failure.append(backend)
    project = ls_client.projects.create(title="e2e single", label_config=single_config(CIFAR))
    photos = [p for p, _ in shared_images(per_class=1)[:6]]
    task_ids = label_studio.upload(project.id, photos)
    data_task = ls_client.tasks.create(project=project.id, data={"image": file_uri(photos[0])})
    task_ids.append(data_task.id)
    task = ls_client.tasks.get(task_ids[0])
    assert task.data["image"].startswith("/data/upload/"), "uploads are served by Label Studio and need the token"

    _connect(ls_client, project.id, backend)
    _retrieve_predictions(label_studio, project.id)
    version = "tiny-clip@r0"
    for task_id in task_ids:
        (prediction,) = _predictions(ls_client, task_id)
        assert prediction.model_version == version
        assert 0.0 <= prediction.score <= 1.0
        (region,) = prediction.result
        assert region["value"]["choices"][0] in CIFAR

    # an annotator opens a task that has no prediction yet: Label Studio asks the backend on the spot
    (new_id,) = label_studio.upload(project.id, [shared_images(per_class=2)[1][0]])
    assert _predictions(ls_client, new_id) == []
    ls_client.tasks.get(new_id)
    wait_until(lambda: len(_predictions(ls_client, new_id)) == 1, 30, "the on-open prediction to be stored")

    # an annotation reaches the backend through the webhook and lands in the support set
    ls_client.annotations.create(id=task_ids[0], result=[
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": ["cat"]}}])
    wait_until(lambda: state.events_received(backend.conn).get("ANNOTATION_CREATED", 0) >= 1, 30, "ANNOTATION_CREATED")
    wait_until(lambda: any(r["task_id"] == task_ids[0] for r in state.annotations(backend.conn, str(project.id)).values()),
               30, "the annotation in the support set")


def test_multi_choice_two_targets_project(request, label_studio, ls_client, base_env, tmp_path_factory, dump_logs_on_failure):
    backend = _backend(request, tmp_path_factory, base_env, base_env["LSCLIP_MODEL"])
    dump_logs_on_failure.append(backend)
    config = (
        '<View><Image name="image" value="$image"/>'
        '<Choices name="tags" toName="image" choice="multiple">' + "".join(f'<Choice value="{c}"/>' for c in CIFAR)
        + '</Choices><Choices name="kind" toName="image"><Choice value="Animal" predicted_values="cat,dog,bird,horse,deer,frog"/>'
        '<Choice value="Vehicle" predicted_values="airplane,car,ship,truck"/></Choices></View>'
    )
    project = ls_client.projects.create(title="e2e multi", label_config=config)
    task_ids = label_studio.upload(project.id, [p for p, _ in shared_images(per_class=1)[:4]])
    _connect(ls_client, project.id, backend)
    _retrieve_predictions(label_studio, project.id)
    for task_id in task_ids:
        (prediction,) = _predictions(ls_client, task_id)
        names = {r["from_name"]: r["value"]["choices"] for r in prediction.result}
        assert set(names) == {"tags", "kind"}
        assert set(names["tags"]) <= set(CIFAR) and names["kind"][0] in ("Animal", "Vehicle")


def test_offline_engine_project_predicts_real_labels(request, label_studio, ls_client, base_env, tmp_path_factory,
                                                     dump_logs_on_failure):
    backend = _backend(request, tmp_path_factory, base_env, "offline")
    dump_logs_on_failure.append(backend)
    config = single_config(IMAGENETTE)
    project = ls_client.projects.create(title="e2e offline", label_config=config)
    pairs = shared_images("imagenette-eval", per_class=1)
    task_ids = label_studio.upload(project.id, [p for p, _ in pairs])
    _connect(ls_client, project.id, backend)
    _retrieve_predictions(label_studio, project.id)
    truth = {path.name: label for path, label in pairs}
    seen = []
    for task_id in task_ids:
        task = ls_client.tasks.get(task_id)
        (prediction,) = _predictions(ls_client, task_id)
        assert prediction.model_version == "offline-conse-lite0@r0"
        name = next(n for n in truth if task.data["image"].endswith(n))
        seen.append((truth[name], prediction.result[0]["value"]["choices"][0]))
    correct = sum(a == b for a, b in seen)
    assert correct >= 7, f"offline engine got {correct}/10 Imagenette photos right through Label Studio: {seen}"

    # annotators label the tasks: webhooks reach the backend, it learns, the version changes,
    # and "retrieve predictions" re-predicts every task with the new version
    for task_id in task_ids:
        name = next(n for n in truth if ls_client.tasks.get(task_id).data["image"].endswith(n))
        ls_client.annotations.create(id=task_id, result=[
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [truth[name]]}}])
    pid = str(project.id)
    wait_until(lambda: len(state.annotations(backend.conn, pid)) == len(task_ids), 60, "all annotations learned")
    wait_until(lambda: state.revision(backend.conn, pid) >= 1 and not state.pending_events(backend.conn, pid)
               and not backend.conn.exists(f"lsclip:lock:learn:{pid}"), 120, "the last refit")
    new_version = f"offline-conse-lite0@r{state.revision(backend.conn, str(project.id))}"
    _retrieve_predictions(label_studio, project.id)
    for task_id in task_ids:
        versions = [p.model_version for p in _predictions(ls_client, task_id)]
        assert new_version in versions, f"task {task_id} was not re-predicted: {versions}"


def test_start_training_rebuilds_the_support_set_from_label_studio(request, label_studio, ls_client, base_env,
                                                                   tmp_path_factory, dump_logs_on_failure):
    backend = _backend(request, tmp_path_factory, base_env, base_env["LSCLIP_MODEL"])
    dump_logs_on_failure.append(backend)
    project = ls_client.projects.create(title="e2e sync", label_config=single_config(CIFAR))
    pairs = shared_images(per_class=1)[:5]
    task_ids = label_studio.upload(project.id, [p for p, _ in pairs])
    ml = _connect(ls_client, project.id, backend)
    for hook in ls_client.webhooks.list(project=project.id):  # the webhook is "missed": nothing reaches the backend
        ls_client.webhooks.delete(hook.id)
    for task_id, (_, label) in zip(task_ids, pairs):
        ls_client.annotations.create(id=task_id, result=[
            {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}])
    time.sleep(1)
    assert state.annotations(backend.conn, str(project.id)) == {}
    ls_client.ml.train(ml.id)  # Label Studio's "Start training": START_TRAINING through the ML connector
    wait_until(lambda: len(state.annotations(backend.conn, str(project.id))) == len(task_ids), 120,
               "START_TRAINING to rebuild the support set from the Label Studio API")
    labels = sorted(r["labels"]["label"][0] for r in state.annotations(backend.conn, str(project.id)).values())
    assert labels == sorted(label for _, label in pairs)
