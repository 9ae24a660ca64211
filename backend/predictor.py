"""Predict a batch of tasks: fetch and decode images in parallel, encode in batches, score per target.

Decode threads run ahead of the model: while one batch is encoded, the next images are
fetched, decoded and preprocessed (PIL and numpy release the GIL). Identical images are
fetched once per batch and encoded once per cache lifetime. A task whose image fails gets
an empty result and an error entry; the other tasks are unaffected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend import embedding_cache
from backend.engines.base import Engine
from backend.images.decode import decode_image
from backend.images.errors import ImageError
from backend.images.fetch import FetchContext, fetch_bytes
from backend.labelconfig import Target
from backend.prompts import class_embeddings
from backend.results import target_result, task_prediction

log = logging.getLogger(__name__)


@dataclass
class PredictStats:
    """What one batch cost: images encoded, cache hits, and per-task errors."""

    encoded: int = 0
    cache_hits: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # task id → reason
    probabilities: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)  # task index → from_name → probs
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)  # task index → its (first) image embedding


@dataclass(frozen=True)
class PredictOptions:
    templates: tuple[str, ...]
    multi_threshold: float
    batch_size: int = 32
    decode_workers: int = 2
    max_pixels: int = 80_000_000
    image_cache_ttl_s: int = 7 * 24 * 3600
    jpeg_draft: bool = False


def _task_key(task: dict[str, Any], index: int) -> str:
    return str(task.get("id", f"#{index}"))


def image_refs(tasks: Sequence[dict[str, Any]], targets: Sequence[Target]) -> tuple[dict[tuple[int, str], str], dict[int, str]]:
    """(task index, data key) → image reference, and errors for tasks whose data lacks a key."""
    refs: dict[tuple[int, str], str] = {}
    errors: dict[int, str] = {}
    keys = sorted({t.data_key for t in targets})
    for i, task in enumerate(tasks):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            errors[i] = "task has no 'data' object"
            continue
        for key in keys:
            if key not in data:
                present = ", ".join(sorted(map(str, data))) or "none"
                errors[i] = (
                    f"task data has no key {key!r} (the label config's <Image value=\"${key}\">); keys present: {present}"
                )
                break
            refs[(i, key)] = data[key]
    return refs, errors


def embed_images(
    engine: Engine,
    refs: Sequence[str],
    fetch_ctx: FetchContext,
    options: PredictOptions,
    cache_conn=None,
    stats: PredictStats | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Embeddings for distinct image references, and an error message per failed reference."""
    stats = stats or PredictStats()
    unique = list(dict.fromkeys(r for r in refs if isinstance(r, str)))
    embeddings: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {str(r): "image reference is not a string" for r in refs if not isinstance(r, str)}
    draft_to = engine.input_size[::-1] if options.jpeg_draft else None

    def load(ref: str) -> tuple[str, bytes]:
        data = fetch_bytes(ref, fetch_ctx)
        return embedding_cache.content_hash(data), data

    pending: dict[str, list[str]] = {}  # content hash → refs still to encode
    batch_hashes: list[str] = []
    batch_pixels: list[np.ndarray] = []
    fresh: dict[str, np.ndarray] = {}

    def flush() -> None:
        if not batch_pixels:
            return
        vectors = engine.encode_pixels(np.stack(batch_pixels))
        for digest, vec in zip(batch_hashes, vectors):
            fresh[digest] = vec
            for ref in pending.pop(digest, []):
                embeddings[ref] = vec
        stats.encoded += len(batch_pixels)
        batch_hashes.clear()
        batch_pixels.clear()

    def decode(data: bytes) -> np.ndarray:
        return engine.preprocess(decode_image(data, options.max_pixels, draft_to=draft_to))

    with ThreadPoolExecutor(max_workers=max(1, options.decode_workers), thread_name_prefix="decode") as pool:
        fetched: dict[str, bytes] = {}
        futures = {pool.submit(load, ref): ref for ref in unique}
        for future in as_completed(futures):
            ref = futures[future]
            try:
                digest, data = future.result()
            except ImageError as exc:
                failures[ref] = str(exc)
                continue
            except Exception as exc:  # a bug in one image must not fail the batch
                log.exception("unexpected error fetching an image")
                failures[ref] = f"unexpected error: {type(exc).__name__}"
                continue
            pending.setdefault(digest, []).append(ref)
            if len(pending[digest]) == 1:
                fetched[digest] = data
        cached = embedding_cache.get_many(cache_conn, engine, list(fetched))
        stats.cache_hits += len(cached)
        for digest, vec in cached.items():
            for ref in pending.pop(digest, []):
                embeddings[ref] = vec
            fetched.pop(digest, None)
        decode_futures = {pool.submit(decode, data): d for d, data in fetched.items()}
        fetched.clear()
        for future in as_completed(decode_futures):
            digest = decode_futures[future]
            try:
                pixels = future.result()
            except ImageError as exc:
                for ref in pending.pop(digest, []):
                    failures[ref] = str(exc)
                continue
            except Exception as exc:
                log.exception("unexpected error decoding an image")
                for ref in pending.pop(digest, []):
                    failures[ref] = f"unexpected error: {type(exc).__name__}"
                continue
            batch_hashes.append(digest)
            batch_pixels.append(pixels)
            if len(batch_pixels) >= options.batch_size:
                flush()
        flush()
    embedding_cache.put_many(cache_conn, engine, fresh, options.image_cache_ttl_s)
    return embeddings, failures


def predict(
    engine: Engine,
    targets: Sequence[Target],
    tasks: Sequence[dict[str, Any]],
    fetch_ctx: FetchContext,
    options: PredictOptions,
    model_version: str,
    cache_conn=None,
    scorer=None,
    thresholds: dict[str, np.ndarray] | None = None,
) -> tuple[list[dict[str, Any]], PredictStats]:
    """Exactly one prediction per task, in order.

    ``scorer(target, embeddings, zero_shot_probs)`` may replace the zero-shot probabilities (calibration);
    ``thresholds`` holds learned per-class thresholds of multi-choice targets, by from_name.
    """
    stats = PredictStats()
    refs, data_errors = image_refs(tasks, targets)
    embeddings, failures = embed_images(engine, list(refs.values()), fetch_ctx, options, cache_conn, stats)

    def score(target: Target, image_embeddings: np.ndarray) -> np.ndarray:
        classes = class_embeddings(engine, target.label_texts, options.templates, cache_conn)
        if scorer is not None:
            calibrated = scorer(target, image_embeddings, classes)
            if calibrated is not None:
                return calibrated
        return engine.probabilities(engine.logits(image_embeddings, classes))

    # per target: score all tasks that have their image in one matrix product
    per_task_regions: list[list[dict[str, Any]]] = [[] for _ in tasks]
    per_task_scores: list[list[float]] = [[] for _ in tasks]
    task_errors: dict[int, str] = dict(data_errors)
    for i in range(len(tasks)):
        for target in targets:
            ref = refs.get((i, target.data_key))
            if ref is not None and not (isinstance(ref, str) and ref in embeddings) and i not in task_errors:
                task_errors[i] = failures.get(ref if isinstance(ref, str) else str(ref), "image could not be read")
    for target in targets:
        rows = [i for i in range(len(tasks)) if i not in task_errors]
        if not rows:
            continue
        matrix = np.stack([embeddings[refs[(i, target.data_key)]] for i in rows])
        probs = score(target, matrix)
        limit = (thresholds or {}).get(target.from_name, options.multi_threshold)
        for i, p, vec in zip(rows, probs, matrix):
            region, s = target_result(target, p, limit)
            per_task_regions[i].append(region)
            per_task_scores[i].append(s)
            stats.probabilities.setdefault(i, {})[target.from_name] = p
            stats.embeddings.setdefault(i, vec)

    predictions = []
    for i, task in enumerate(tasks):
        if i in task_errors:
            stats.errors[_task_key(task, i)] = task_errors[i]
            log.warning("task %s: %s", _task_key(task, i), task_errors[i])
            predictions.append(task_prediction([], [], model_version))
        else:
            predictions.append(task_prediction(per_task_regions[i], per_task_scores[i], model_version))
    return predictions, stats
