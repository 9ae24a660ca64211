"""``lsclip eval``: predict a labelled folder through the same code path as ``/predict``.

The folder holds ``labels.csv`` (``path,label``). A label config with one ``Choices`` over the
folder's labels is built and parsed like Label Studio's; every image becomes a task whose data is
a Label Studio local-files URL, fetched, decoded, batched, encoded and scored by ``backend.predictor``
exactly as a worker does for ``/predict``.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from backend.engines.base import Engine
from backend.evaluation import metrics
from backend.images.fetch import FetchContext
from backend.images.url_policy import UrlPolicy
from backend.jobs.predict import predict_options
from backend.labelconfig import parse_targets
from backend.predictor import predict
from backend.settings import Settings

log = logging.getLogger(__name__)

CHUNK = 256  # tasks per predict call, like a Label Studio batch


@dataclass(frozen=True)
class LabelledSet:
    root: Path
    paths: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def classes(self) -> list[str]:
        return sorted(set(self.labels))


def load_labelled(folder: str | Path, limit: int = 0) -> LabelledSet:
    """Read ``labels.csv``; ``limit`` keeps the first N rows of each class (0: all)."""
    root = Path(folder)
    csv_path = root / "labels.csv"
    if not csv_path.exists():
        raise FileNotFoundError(f"{csv_path} not found: the folder needs a labels.csv with columns path,label")
    paths, labels, seen = [], [], {}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            label = row["label"]
            if limit and seen.get(label, 0) >= limit:
                continue
            seen[label] = seen.get(label, 0) + 1
            paths.append(row["path"])
            labels.append(label)
    return LabelledSet(root=root, paths=tuple(paths), labels=tuple(labels))


def label_config_for(classes: Sequence[str]) -> str:
    """A single-choice config over ``classes``; underscores read as spaces by the model."""
    choices = []
    for label in classes:
        synonyms = f" predicted_values={quoteattr(label.replace('_', ' '))}" if "_" in label else ""
        choices.append(f"<Choice value={quoteattr(label)}{synonyms}/>")
    return ('<View><Image name="image" value="$image"/><Choices name="label" toName="image" choice="single">'
            + "".join(choices) + "</Choices></View>")


def tasks_for(data: LabelledSet) -> list[dict[str, Any]]:
    return [{"id": i, "data": {"image": "/data/local-files/?d=" + quote(p)}} for i, p in enumerate(data.paths)]


def fetch_context_for(data: LabelledSet, settings: Settings) -> FetchContext:
    return FetchContext(hostname="", token="", timeout_s=settings.fetch_timeout_s, max_bytes=settings.max_image_bytes,
                        policy=UrlPolicy([], ()), local_files_root=str(data.root.resolve()))


@dataclass
class Predicted:
    labels: list[str]
    scores: list[float]
    seconds: float
    errors: int


def predict_set(engine: Engine, data: LabelledSet, settings: Settings, classes: Sequence[str] | None = None,
                cache_conn=None, scorer: Callable | None = None, model_version: str = "eval") -> Predicted:
    """Predicted label and score for every image, in order."""
    config = label_config_for(classes or data.classes)
    targets = parse_targets(config)
    tasks = tasks_for(data)
    ctx = fetch_context_for(data, settings)
    options = predict_options(settings)
    labels, scores, errors = [], [], 0
    started = time.perf_counter()
    for start in range(0, len(tasks), CHUNK):
        predictions, stats = predict(engine, targets, tasks[start : start + CHUNK], ctx, options, model_version,
                                     cache_conn=cache_conn, scorer=scorer)
        errors += len(stats.errors)
        for prediction in predictions:
            if prediction["result"]:
                labels.append(prediction["result"][0]["value"]["choices"][0])
                scores.append(float(prediction["score"]))
            else:
                labels.append("")
                scores.append(0.0)
    return Predicted(labels=labels, scores=scores, seconds=time.perf_counter() - started, errors=errors)


def summarise(data: LabelledSet, predicted: Predicted, bins: int = 15) -> dict[str, Any]:
    """The harness's numbers for one run."""
    truth = list(data.labels)
    classes = data.classes
    correct = [t == p for t, p in zip(truth, predicted.labels)]
    rel = metrics.reliability(correct, predicted.scores, bins)
    return {
        "n": len(truth),
        "top1": metrics.top1(truth, predicted.labels),
        "ece": rel.ece,
        "per_class": metrics.per_class_accuracy(truth, predicted.labels, classes),
        "images_per_s": len(truth) / predicted.seconds if predicted.seconds > 0 else 0.0,
        "errors": predicted.errors,
        "confusion": metrics.confusion_matrix(truth, predicted.labels, classes).tolist(),
        "classes": classes,
        "_reliability": rel,
    }


def format_text(summary: dict[str, Any]) -> str:
    """A human-readable report: headline, per-class accuracy, confusion matrix."""
    classes = summary["classes"]
    lines = [
        f"images: {summary['n']}  top-1: {summary['top1'] * 100:.1f} %  ECE (15 bins): {summary['ece'] * 100:.1f} %  "
        f"speed: {summary['images_per_s']:.1f} img/s  errors: {summary['errors']}",
        "",
        "per-class top-1:",
    ]
    width = max(len(c) for c in classes)
    for label, acc in summary["per_class"].items():
        lines.append(f"  {label:<{width}}  {acc * 100:5.1f} %")
    lines += ["", "confusion matrix (rows: true, columns: predicted, in the order above):"]
    for label, row in zip(classes, summary["confusion"]):
        lines.append(f"  {label:<{width}}  " + " ".join(f"{v:4d}" for v in row))
    return "\n".join(lines)


def public(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without private plotting data."""
    return {k: v for k, v in summary.items() if not k.startswith("_")}


def evaluate(engine: Engine, folder: str | Path, settings: Settings, limit: int = 0, cache_conn=None) -> dict[str, Any]:
    data = load_labelled(folder, limit)
    return summarise(data, predict_set(engine, data, settings, cache_conn=cache_conn))


def mean_of(summaries: Sequence[dict[str, Any]], key: str) -> float:
    return float(np.mean([s[key] for s in summaries])) if summaries else 0.0
