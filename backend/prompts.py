"""Class embeddings by prompt ensembling, cached per (model, label texts, templates).

Class embedding = L2-normalised mean over templates × synonyms of the normalised text
embeddings of every prompt. Labels are encoded once per label set, never per image.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from backend.engines.base import Engine, l2_normalise

log = logging.getLogger(__name__)

_MEMORY: OrderedDict[str, np.ndarray] = OrderedDict()
_MEMORY_SIZE = 64


def prompts_for(texts: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every template filled with every synonym of one class."""
    return [template.format(text) for text in texts for template in templates]


def text_key(engine: Engine, label_texts: Sequence[Sequence[str]], templates: Sequence[str]) -> str:
    """Cache key of a class matrix."""
    blob = json.dumps([engine.name, engine.model_id, list(map(list, label_texts)), list(templates)])
    return "lsclip:cache:text:" + hashlib.sha256(blob.encode()).hexdigest()[:32]


def class_embeddings(
    engine: Engine,
    label_texts: Sequence[Sequence[str]],
    templates: Sequence[str],
    cache=None,
) -> np.ndarray:
    """(K, d) class matrix for K classes, each given by its synonyms; memory and Redis cached."""
    key = text_key(engine, label_texts, templates)
    hit = _MEMORY.get(key)
    if hit is not None:
        _MEMORY.move_to_end(key)
        return hit
    matrix = _from_redis(cache, key, engine.dim)
    if matrix is None:
        matrix = encode_classes(engine, label_texts, templates)
        _to_redis(cache, key, matrix)
    _MEMORY[key] = matrix
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.popitem(last=False)
    return matrix


def encode_classes(engine: Engine, label_texts: Sequence[Sequence[str]], templates: Sequence[str]) -> np.ndarray:
    """Encode all prompts of all classes in one batched pass and average per class."""
    prompts: list[str] = []
    bounds: list[tuple[int, int]] = []
    for texts in label_texts:
        start = len(prompts)
        prompts.extend(prompts_for(texts, templates))
        bounds.append((start, len(prompts)))
    embedded = engine.encode_texts(prompts)
    means = np.stack([embedded[a:b].mean(axis=0) for a, b in bounds])
    log.info("encoded %d prompts for %d classes", len(prompts), len(label_texts))
    return l2_normalise(means).astype(np.float32)


def _from_redis(cache, key: str, dim: int) -> np.ndarray | None:
    if cache is None:
        return None
    try:
        raw = cache.get(key)
    except Exception as exc:  # a cache miss, never a failure
        log.warning("text cache unavailable: %s", exc)
        return None
    if not raw:
        return None
    return np.frombuffer(raw, dtype=np.float32).reshape(-1, dim).copy()


def _to_redis(cache, key: str, matrix: np.ndarray) -> None:
    if cache is None:
        return
    try:
        cache.set(key, matrix.astype(np.float32).tobytes(), ex=30 * 24 * 3600)
    except Exception as exc:
        log.warning("text cache unavailable: %s", exc)
