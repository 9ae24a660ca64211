"""``lsclip eval EVAL --support POOL --shots K --seeds N``: calibration measured, not claimed.

For each seed, K corrections per class are drawn from the disjoint pool and fed as
``ANNOTATION_CREATED`` events through the real learn path (``state.record_event`` +
``backend.jobs.learn.learn_job``, exactly what a worker runs for a webhook), into a throwaway
project; the eval set is then predicted with that project's calibration through the /predict
code path. Uses ``REDIS_URL`` when set, else a temporary embedded Redis.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from backend.evaluation import harness

log = logging.getLogger(__name__)


def _rebase(data: harness.LabelledSet, root: Path) -> harness.LabelledSet:
    prefix = data.root.resolve().relative_to(root)
    return replace(data, root=root, paths=tuple(str(prefix / p) for p in data.paths))


def _use_redis_and_root(root: Path):
    """Point settings at a Redis (embedded if none) and the local-files root.

    Returns the embedded server (keep it alive) and a function restoring the environment.
    """
    from backend import redis_conn
    from backend.settings import get_settings, reset_settings

    saved = {k: os.environ.get(k) for k in ("REDIS_URL", "LOCAL_FILES_DOCUMENT_ROOT")}

    def restore() -> None:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
        redis_conn.reset_connections()

    embedded = None
    if not get_settings().redis_url:
        from backend.embedded_redis import start_embedded

        embedded = start_embedded(Path(tempfile.mkdtemp(prefix="lsclip-eval-")) / "redis.db")
        os.environ["REDIS_URL"] = f"unix://{embedded.socket_file}"
    os.environ["LOCAL_FILES_DOCUMENT_ROOT"] = str(root)
    reset_settings()
    redis_conn.reset_connections()
    return embedded, restore


def learn_from(pid: str, config: str, pool: harness.LabelledSet, picks: list[int]) -> int:
    """Feed the picked pool images as annotation events through the learn path; returns the revision."""
    from backend import redis_conn, state
    from backend.jobs.learn import learn_job

    conn = redis_conn.durable()
    state.save_project(conn, pid, config, hostname="", access_token="")
    events = []
    for n, i in enumerate(picks):
        event = {
            "action": "ANNOTATION_CREATED", "project": {"id": pid}, "label_config": config,
            "task": {"id": 100000 + i, "data": {"image": harness.tasks_for(pool)[i]["data"]["image"]}},
            "annotation": {"id": f"{pid}-{n}", "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                                             "value": {"choices": [pool.labels[i]]}}]},
        }
        event_id = uuid.uuid4().hex
        state.record_event(conn, event_id, event)
        events.append(event_id)
    for event_id in events:  # the worker's own job function, in order
        learn_job(event_id)
    return state.revision(conn, pid)


def _cleanup(pid: str) -> None:
    from backend import redis_conn

    conn = redis_conn.durable()
    for key in conn.scan_iter(match=f"lsclip:project:{pid}*"):
        conn.delete(key)


def evaluate_fewshot(engine, eval_dir: str | Path, pool_dir: str | Path, shots: int, seeds: int, settings,
                     limit: int = 0, cache_conn=None) -> dict[str, Any]:
    """Zero-shot vs calibrated top-1 and ECE, means over ``seeds`` draws of ``shots`` corrections per class."""
    eval_set, pool = harness.load_labelled(eval_dir, limit), harness.load_labelled(pool_dir)
    root = Path(os.path.commonpath([eval_set.root.resolve(), pool.root.resolve()]))
    embedded, restore = _use_redis_and_root(root)
    try:
        return _run(engine, eval_set, pool, root, shots, seeds)
    finally:
        restore()
        if embedded is not None:
            from backend.embedded_redis import stop_embedded

            stop_embedded(embedded)


def _run(engine, eval_set, pool, root: Path, shots: int, seeds: int) -> dict[str, Any]:
    from backend import redis_conn
    from backend.calibration import store
    from backend.jobs.predict import calibrated_scoring
    from backend.settings import get_settings

    settings = get_settings()
    eval_set, pool = _rebase(eval_set, root), _rebase(pool, root)
    classes = eval_set.classes
    config = harness.label_config_for(classes)
    cache = redis_conn.cache()
    zero = harness.summarise(eval_set, harness.predict_set(engine, eval_set, settings, classes, cache_conn=cache))
    runs = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        picks: list[int] = []
        for label in classes:
            candidates = [i for i, l in enumerate(pool.labels) if l == label]
            picks.extend(int(i) for i in rng.choice(candidates, size=min(shots, len(candidates)), replace=False))
        pid = f"eval{uuid.uuid4().hex[:10]}"
        try:
            revision = learn_from(pid, config, pool, picks) if shots > 0 else 0
            calibration = store.load(redis_conn.durable(), pid, engine.name)
            scorer, thresholds = calibrated_scoring(calibration)
            predicted = harness.predict_set(engine, eval_set, settings, classes, cache_conn=cache, scorer=scorer)
            summary = harness.summarise(eval_set, predicted)
            layer = calibration["label"].layer if "label" in calibration else "zero-shot"
            runs.append({"seed": seed, "top1": summary["top1"], "ece": summary["ece"], "revision": revision,
                         "layer": layer, "chain": calibration["label"].stats.get("chain", []) if "label" in calibration else []})
            log.info("K=%d seed %d: top-1 %.3f ECE %.3f (%s)", shots, seed, summary["top1"], summary["ece"], layer)
        finally:
            _cleanup(pid)
    return {
        "shots": shots,
        "seeds": seeds,
        "n": zero["n"],
        "zero_shot": {"top1": zero["top1"], "ece": zero["ece"]},
        "calibrated": {"top1": harness.mean_of(runs, "top1"), "ece": harness.mean_of(runs, "ece")},
        "per_seed": runs,
    }
