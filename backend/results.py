"""Shape class probabilities into Label Studio prediction results, one target at a time."""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.labelconfig import Target


def target_result(target: Target, probs: np.ndarray, multi_threshold: float | np.ndarray) -> tuple[dict[str, Any], float]:
    """One result region for ``target`` from its class probabilities, and its score.

    single: the top class, scored by its probability; multiple: every class at or above
    ``multi_threshold`` (a scalar, or one learned threshold per class; at least the top one), scored by the mean probability of those
    chosen; taxonomy: the best leaf's full path, scored by its probability.
    """
    order = np.argsort(-probs)
    top = int(order[0])
    if target.kind == "multiple":
        limits = np.broadcast_to(np.asarray(multi_threshold, dtype=float), probs.shape)
        chosen = [int(i) for i in order if probs[i] >= limits[i]] or [top]
        value = {"choices": [target.classes[i].value for i in chosen]}
        score = float(np.mean(probs[chosen]))
    elif target.kind == "taxonomy":
        value = {"taxonomy": [list(target.classes[top].path)]}
        score = float(probs[top])
    else:
        value = {"choices": [target.classes[top].value]}
        score = float(probs[top])
    score = min(1.0, max(0.0, score))
    region = {
        "from_name": target.from_name,
        "to_name": target.to_name,
        "type": target.result_type,
        "value": value,
        "score": score,
    }
    return region, score


def task_prediction(regions: list[dict[str, Any]], scores: list[float], model_version: str) -> dict[str, Any]:
    """A task's prediction: its regions, scored by the least certain target (what active learning sorts on)."""
    return {
        "result": regions,
        "score": float(min(scores)) if scores else 0.0,
        "model_version": model_version,
    }
