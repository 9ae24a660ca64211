"""Refit a project's calibration from its support set and store it as a new revision if it changed."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from backend import state
from backend.calibration import store
from backend.calibration.fit import Problem, fit_target, fit_thresholds, prompt_tensor
from backend.calibration.model import TargetCalibration
from backend.calibration.support import target_examples
from backend.engines.base import Engine
from backend.labelconfig import Target
from backend.prompts import class_embeddings, prompts_for

log = logging.getLogger(__name__)

_PROMPTS: dict[tuple, list[np.ndarray]] = {}


def prompt_embeddings(engine: Engine, target: Target, templates: tuple[str, ...]) -> list[np.ndarray]:
    """Per class, the embeddings of its prompts (templates × synonyms); memoised per process."""
    key = (engine.name, engine.model_id, target.label_texts, templates)
    if key not in _PROMPTS:
        flat, bounds = [], []
        for texts in target.label_texts:
            start = len(flat)
            flat.extend(prompts_for(texts, templates))
            bounds.append((start, len(flat)))
        emb = engine.encode_texts(flat)
        _PROMPTS[key] = [emb[a:b] for a, b in bounds]
    return _PROMPTS[key]


def _class_index(target: Target, label: Any) -> int | None:
    if target.kind == "taxonomy":
        path = tuple(label) if isinstance(label, list) else (label,)
        for i, cls in enumerate(target.classes):
            if cls.path == path:
                return i
        return None
    for i, cls in enumerate(target.classes):
        if cls.value == label:
            return i
    return None


def fit_project(engine: Engine, targets: tuple[Target, ...], records: dict[str, dict[str, Any]],
                templates: tuple[str, ...], multi_threshold: float, cache_conn=None) -> dict[str, TargetCalibration]:
    """One calibration per target from the support records (zero-shot where there is too little)."""
    out: dict[str, TargetCalibration] = {}
    for target in targets:
        X, labels = target_examples(records, target, engine.name)
        classes = [c.value for c in target.classes]
        zs = class_embeddings(engine, target.label_texts, templates, cache_conn)
        if target.kind == "multiple":
            if not len(X):
                continue
            Y = np.zeros((len(X), len(classes)), dtype=np.float32)
            for row, chosen in enumerate(labels):
                for label in chosen:
                    k = _class_index(target, label)
                    if k is not None:
                        Y[row, k] = 1
            probs = engine.probabilities(engine.logits(X, zs))
            out[target.from_name] = fit_thresholds(target.from_name, classes, probs, Y, multi_threshold)
            continue
        keep = [(i, _class_index(target, chosen[0])) for i, chosen in enumerate(labels) if chosen]
        keep = [(i, k) for i, k in keep if k is not None]
        if not keep:
            continue
        rows = np.array([i for i, _ in keep])
        y = np.array([k for _, k in keep])
        emb, mask = prompt_tensor(prompt_embeddings(engine, target, templates))
        problem = Problem(X=X[rows], y=y, zs_matrix=zs, prompt_emb=emb, prompt_mask=mask, scale=engine.logit_scale)
        out[target.from_name] = fit_target(target.from_name, target.kind, classes, problem)
        log.info("target %s: kept %s (%s)", target.from_name, out[target.from_name].layer, out[target.from_name].stats)
    return out


def refit(conn, pid: str, engine: Engine, targets: tuple[Target, ...], templates: tuple[str, ...],
          multi_threshold: float, reason: str, cache_conn=None) -> tuple[int, bool]:
    """Fit from the stored support set; a changed calibration becomes a new revision."""
    records = state.annotations(conn, pid)
    calibration = fit_project(engine, targets, records, templates, multi_threshold, cache_conn)
    revision, changed = store.save(conn, pid, engine.name, calibration, support_size=len(records), reason=reason)
    if changed:
        log.info("project %s: calibration revision r%d (%d corrections)", pid, revision, len(records))
    return revision, changed
