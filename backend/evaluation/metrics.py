"""Accuracy and calibration metrics on (true label, predicted label, confidence) triples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def top1(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Fraction of exact matches."""
    if not truth:
        return 0.0
    return float(np.mean([t == p for t, p in zip(truth, predicted)]))


def per_class_accuracy(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Recall per true class (classes without examples are left out)."""
    out = {}
    for label in labels:
        rows = [p for t, p in zip(truth, predicted) if t == label]
        if rows:
            out[label] = float(np.mean([p == label for p in rows]))
    return out


def confusion_matrix(truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """counts[i, j] = images of true class i predicted as class j (unknown predictions are dropped)."""
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        if t in index and p in index:
            counts[index[t], index[p]] += 1
    return counts


@dataclass(frozen=True)
class Reliability:
    """Per-bin accuracy and mean confidence (empty bins are NaN) and the bin counts."""

    edges: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return 0.0
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((gaps * self.counts[filled]).sum() / total)


def reliability(correct: Sequence[bool], confidence: Sequence[float], bins: int = 15) -> Reliability:
    """Equal-width confidence bins over [0, 1]; the last bin includes 1.0."""
    correct_arr = np.asarray(correct, dtype=np.float64)
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.minimum(np.searchsorted(edges, conf, side="right") - 1, bins - 1)
    which = np.maximum(which, 0)
    counts = np.bincount(which, minlength=bins)
    acc = np.full(bins, np.nan)
    mean_conf = np.full(bins, np.nan)
    for b in range(bins):
        if counts[b]:
            acc[b] = correct_arr[which == b].mean()
            mean_conf[b] = conf[which == b].mean()
    return Reliability(edges=edges, accuracy=acc, confidence=mean_conf, counts=counts)


def expected_calibration_error(correct: Sequence[bool], confidence: Sequence[float], bins: int = 15) -> float:
    """ECE: count-weighted mean |accuracy − confidence| over equal-width bins."""
    return reliability(correct, confidence, bins).ece
