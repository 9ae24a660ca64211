"""``lsclip queue``: rank a project's unlabeled tasks for active learning and hand them to annotators.

The ranking uses what every prediction stored per task (``backend.task_scores``): calibrated class
probabilities and the image embedding. The result becomes a Data Manager tab holding exactly
those tasks, least certain first (Label Studio orders a tab by a column: the prediction score,
which is the least certain target's probability), and/or a CSV/JSON file in the strategy's own order.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import redis

from backend import state, task_scores
from plugin import strategies
from plugin.client import PluginError
from plugin.preannotate import list_tasks

log = logging.getLogger(__name__)


@dataclass
class QueueResult:
    strategy: str
    ranking: list[tuple[str, float]]
    versions: dict[str, str] = field(default_factory=dict)  # task id → model_version of its stored scores
    unlabeled: int = 0
    without_scores: int = 0
    stale: int = 0
    view_id: int | None = None
    export: str = ""

    def text(self) -> str:
        lines = [f"{len(self.ranking)} of {self.unlabeled} unlabeled tasks queued by {self.strategy}"]
        if self.without_scores:
            lines.append(f"  {self.without_scores} unlabeled tasks have no stored prediction yet: run `lsclip preannotate`")
        if self.stale:
            lines.append(f"  {self.stale} ranked tasks were scored by an older model_version: re-run `lsclip preannotate` "
                         "to rank on the current calibration")
        if self.view_id is not None:
            lines.append(f"  Data Manager tab created (view id {self.view_id})")
        if self.export:
            lines.append(f"  ranking written to {self.export}")
        head = ", ".join(f"{tid} ({u:.3f})" for tid, u in self.ranking[:5])
        lines.append(f"  first: {head}")
        return "\n".join(lines)


def build_queue(ls, conn: redis.Redis, project_id: int, strategy: str, size: int) -> QueueResult:
    """Rank the project's unlabeled tasks that hold stored scores."""
    pid = str(project_id)
    unlabeled = [t["id"] for t in list_tasks(ls, project_id) if not t["labeled"]]
    records = task_scores.load(conn, pid, unlabeled)
    if not records:
        raise PluginError(f"no stored predictions for the {len(unlabeled)} unlabeled tasks of project {project_id}: "
                          "run `lsclip preannotate --project N` first")
    vectors = task_scores.embeddings(conn, pid, list(records)) if strategy == "diverse" else None
    ranking = strategies.rank(strategy, records, size, vectors)
    current = state.model_version(conn, pid)
    versions = {tid: records[tid]["version"] for tid, _ in ranking}
    return QueueResult(strategy=strategy, ranking=ranking, versions=versions, unlabeled=len(unlabeled),
                       without_scores=len(unlabeled) - len(records),
                       stale=sum(1 for v in versions.values() if v != current))


def create_view(ls, project_id: int, result: QueueResult, title: str = "") -> int:
    """A Data Manager tab with exactly the queued tasks, ordered by prediction score (least certain first)."""
    ids = [int(tid) for tid, _ in result.ranking]
    if not ids:
        raise PluginError("nothing to queue")
    # the prediction score column is computed for the project's selected model_version
    newest = max(set(result.versions.values()), key=state.revision_of)
    project = ls.projects.get(project_id)
    if project.model_version != newest:
        ls.projects.update(id=project_id, model_version=newest)
    data = {
        "title": title or f"lsclip: {result.strategy} top {len(ids)}",
        "filters": {"conjunction": "or", "items": [
            {"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": i} for i in ids]},
        "ordering": ["tasks:predictions_score"],
    }
    view = ls.views.create(project=project_id, data=data)
    result.view_id = int(view.id)
    return result.view_id


def export(result: QueueResult, path: Path) -> Path:
    """Write the ranking as CSV (by extension) or JSON."""
    rows = [{"rank": i + 1, "task_id": int(tid), "uncertainty": round(u, 6), "strategy": result.strategy,
             "model_version": result.versions.get(tid, "")} for i, (tid, u) in enumerate(result.ranking)]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["rank", "task_id"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text(json.dumps(rows, indent=2))
    result.export = str(path)
    return path
