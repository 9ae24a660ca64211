"""The support set: one record per annotation (keyed by its id), with the image embeddings it needs.

Records live in durable Redis (``project:{pid}:annotations``); each keeps the task's image
references and, per data key, the embedding under the engine that computed it, so a refit is
matrix work, and an engine change re-embeds from the references.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import numpy as np

from backend.engines.base import Engine
from backend.images.fetch import FetchContext
from backend.labelconfig import Target
from backend.predictor import PredictOptions, embed_images

log = logging.getLogger(__name__)


def encode_vec(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, np.float32).tobytes()).decode()


def decode_vec(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.float32).copy()


def annotation_labels(result: list[dict[str, Any]]) -> dict[str, list]:
    """from_name → the annotator's choices (or taxonomy paths) in one annotation result."""
    labels: dict[str, list] = {}
    for region in result or []:
        value = region.get("value") or {}
        kind = region.get("type")
        if kind in ("choices", "taxonomy") and region.get("from_name"):
            labels.setdefault(region["from_name"], []).extend(value.get(kind, []))
    return labels


def ensure_embeddings(records: dict[str, dict[str, Any]], targets: tuple[Target, ...], engine: Engine,
                      fetch_ctx: FetchContext, options: PredictOptions, cache_conn=None) -> list[str]:
    """Fill in missing embeddings (for this engine) in place; returns the ids of records that changed."""
    wanted: dict[str, list[tuple[str, str]]] = {}  # ref → [(record id, data key)]
    for rid, record in records.items():
        emb = record.setdefault("embeddings", {})
        for target in targets:
            key = target.data_key
            if target.from_name not in record.get("labels", {}):
                continue
            if emb.get(key, {}).get("engine") == engine.name:
                continue
            ref = (record.get("data") or {}).get(key)
            if isinstance(ref, str):
                wanted.setdefault(ref, []).append((rid, key))
    if not wanted:
        return []
    vectors, failures = embed_images(engine, list(wanted), fetch_ctx, options, cache_conn)
    changed = set()
    for ref, slots in wanted.items():
        if ref not in vectors:
            log.warning("support image could not be read (%s); its annotation is not learned from", failures.get(ref))
            continue
        for rid, key in slots:
            records[rid]["embeddings"][key] = {"engine": engine.name, "vec": encode_vec(vectors[ref])}
            changed.add(rid)
    return sorted(changed)


def target_examples(records: dict[str, dict[str, Any]], target: Target, engine_name: str) -> tuple[np.ndarray, list[list]]:
    """(X, labels) of the records that annotate ``target`` and have an embedding for it."""
    rows, labels = [], []
    for record in records.values():
        if record.get("was_cancelled") or target.from_name not in record.get("labels", {}):
            continue
        emb = (record.get("embeddings") or {}).get(target.data_key)
        if not emb or emb.get("engine") != engine_name:
            continue
        rows.append(decode_vec(emb["vec"]))
        labels.append(record["labels"][target.from_name])
    X = np.stack(rows) if rows else np.zeros((0, 0), np.float32)
    return X, labels
