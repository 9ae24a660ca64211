"""Active-learning ranking of unlabeled tasks from their stored class probabilities.

A task's uncertainty is that of its least certain target (as its Label Studio ``score`` is the
least certain target's score). Per target, with probabilities p sorted p1 ≥ p2 ≥ …:

- ``least-confidence``: 1 − p1
- ``margin``:           1 − (p1 − p2)
- ``entropy``:          −Σ p log p / log K (0 … 1)
- multi-choice targets are K independent yes/no decisions: the most uncertain class counts
  (1 − |2p − 1| for every measure).
- ``diverse``: the 3·size most uncertain by entropy, then k-center greedy on the image embeddings
  (start from the most uncertain, repeatedly add the task farthest from those chosen), so a
  batch does not spend the annotators' time on near-duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

STRATEGIES = ("least-confidence", "margin", "entropy", "diverse")


def _binary(p: np.ndarray) -> float:
    return float(np.max(1.0 - np.abs(2.0 * p - 1.0))) if p.size else 0.0


def target_uncertainty(probs: np.ndarray, kind: str, measure: str) -> float:
    """Uncertainty of one target's class probabilities under ``measure`` (0 = certain)."""
    p = np.clip(np.asarray(probs, dtype=float), 0.0, 1.0)
    if p.size == 0:
        return 0.0
    if kind == "multiple":
        return _binary(p)
    top = np.sort(p)[::-1]
    if measure == "least-confidence":
        return float(1.0 - top[0])
    if measure == "margin":
        return float(1.0 - (top[0] - (top[1] if top.size > 1 else 0.0)))
    if measure == "entropy":
        q = p / p.sum() if p.sum() > 0 else np.full_like(p, 1.0 / p.size)
        h = -np.sum(q[q > 0] * np.log(q[q > 0]))
        return float(h / np.log(p.size)) if p.size > 1 else 0.0
    raise ValueError(f"unknown measure {measure!r}; choose one of {', '.join(STRATEGIES)}")


def task_uncertainty(record: Mapping[str, Any], measure: str) -> float:
    """The least certain target's uncertainty for a stored task record."""
    kinds = record.get("kinds", {})
    values = [target_uncertainty(np.asarray(p), kinds.get(name, "single"), measure)
              for name, p in record.get("probs", {}).items()]
    return max(values) if values else 0.0


def k_center_greedy(vectors: np.ndarray, k: int, first: int = 0) -> list[int]:
    """Indices of ``k`` rows chosen by k-center greedy (cosine distance), starting from ``first``."""
    n = len(vectors)
    if n == 0 or k <= 0:
        return []
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    chosen = [first]
    distance = 1.0 - x @ x[first]
    while len(chosen) < min(k, n):
        distance[chosen] = -np.inf
        nxt = int(np.argmax(distance))
        chosen.append(nxt)
        distance = np.minimum(distance, 1.0 - x @ x[nxt])
    return chosen


def rank(strategy: str, records: Mapping[str, Mapping[str, Any]], size: int,
         embeddings: Mapping[str, np.ndarray] | None = None) -> list[tuple[str, float]]:
    """The ``size`` tasks to label next, most useful first, with their uncertainty."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    measure = "entropy" if strategy == "diverse" else strategy
    scored = sorted(((tid, task_uncertainty(r, measure)) for tid, r in records.items()),
                    key=lambda item: (-item[1], _int_or_str(item[0])))
    if strategy != "diverse":
        return scored[:size]
    pool = scored[: max(size, 3 * size)]
    with_vectors = [(tid, u) for tid, u in pool if embeddings and tid in embeddings]
    without = [(tid, u) for tid, u in pool if not (embeddings and tid in embeddings)]
    if not with_vectors:
        return pool[:size]
    picked = k_center_greedy(np.stack([embeddings[tid] for tid, _ in with_vectors]), size)
    return ([with_vectors[i] for i in picked] + without)[:size]


def _int_or_str(value: str) -> tuple[int, str]:
    return (int(value), "") if str(value).isdigit() else (0, str(value))
