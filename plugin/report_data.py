"""The numbers of ``lsclip report``: how predictions compared with what annotators chose.

A prediction counts against an annotation only when it existed before the annotation was made
(it is what the annotator could have seen); one made afterwards, by a revision that learned from
that very annotation, would flatter the model. Each (prediction, annotation) pair is compared per
control (``from_name``): agreement means the same set of choices (or taxonomy paths).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from backend.calibration.support import annotation_labels
from backend.state import revision_of
from backend.evaluation.metrics import confusion_matrix, reliability


@dataclass(frozen=True)
class Pair:
    """One control of one prediction, next to the annotator's answer for the same task."""

    task_id: int
    version: str
    from_name: str
    predicted: tuple[str, ...]
    truth: tuple[str, ...]
    score: float

    @property
    def agree(self) -> bool:
        return set(self.predicted) == set(self.truth)


def _key(labels: list) -> tuple[str, ...]:
    return tuple(sorted(x if isinstance(x, str) else json.dumps(x) for x in labels))


def _time(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float("inf")


def pairs_from_tasks(tasks: Iterable[Mapping[str, Any]], versions: set[str] | None = None) -> list[Pair]:
    """Pairs from Label Studio tasks (``fields=all``: annotations and predictions included).

    ``versions`` limits predictions to this backend's model versions (None: all).
    """
    pairs: list[Pair] = []
    for task in tasks:
        predictions = [p for p in task.get("predictions") or [] if versions is None or p.get("model_version") in versions]
        for annotation in task.get("annotations") or []:
            if annotation.get("was_cancelled"):
                continue
            truth = annotation_labels(annotation.get("result") or [])
            made = _time(annotation.get("created_at"))
            latest: dict[str, Mapping[str, Any]] = {}  # the newest prediction of each version made before it
            for p in predictions:
                if _time(p.get("created_at")) <= made:
                    v = p.get("model_version") or ""
                    if v not in latest or _time(p.get("created_at")) >= _time(latest[v].get("created_at")):
                        latest[v] = p
            for version, p in latest.items():
                for region in p.get("result") or []:
                    name = region.get("from_name")
                    if name not in truth:
                        continue
                    predicted = annotation_labels([region]).get(name, [])
                    score = region.get("score", p.get("score"))
                    pairs.append(Pair(int(task["id"]), version, name, _key(predicted), _key(truth[name]),
                                      float(score if score is not None else 0.0)))
    return pairs


def summarize(pairs: list[Pair], revisions: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Per model_version: pairs, agreement rate, ECE of the shown scores, per-class rates, confusion matrix."""
    learned = {int(r["revision"]): int(r.get("support", 0)) for r in revisions or []}
    out: dict[str, Any] = {"versions": {}, "total": len(pairs)}
    for version in sorted({p.version for p in pairs}, key=lambda v: (revision_of(v), v)):
        rows = [p for p in pairs if p.version == version]
        agree = [p.agree for p in rows]
        rel = reliability(agree, [p.score for p in rows])
        per_class: dict[str, dict[str, Any]] = {}
        for p in rows:
            label = p.truth[0] if len(p.truth) == 1 else " + ".join(p.truth) or "(none)"
            row = per_class.setdefault(label, {"n": 0, "agree": 0})
            row["n"] += 1
            row["agree"] += int(p.agree)
        for row in per_class.values():
            row["rate"] = row["agree"] / row["n"]
        single = [p for p in rows if len(p.truth) == 1 and len(p.predicted) == 1]
        labels = sorted({p.truth[0] for p in single} | {p.predicted[0] for p in single})
        matrix = confusion_matrix([p.truth[0] for p in single], [p.predicted[0] for p in single], labels) \
            if single else np.zeros((0, 0), dtype=int)
        revision = revision_of(version)
        out["versions"][version] = {
            "revision": revision,
            "corrections_learned": learned.get(revision, 0),
            "n": len(rows),
            "agree": int(sum(agree)),
            "rate": float(np.mean(agree)) if rows else None,
            "ece": rel.ece,
            "mean_score": float(np.mean([p.score for p in rows])) if rows else None,
            "per_class": dict(sorted(per_class.items())),
            "confusion": {"labels": labels, "counts": matrix.tolist()},
            "_reliability": rel,
        }
    return out


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without its plotting internals (JSON-serialisable)."""
    return {**summary, "versions": {v: {k: x for k, x in row.items() if not k.startswith("_")}
                                    for v, row in summary["versions"].items()}}
