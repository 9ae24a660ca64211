"""``lsclip preannotate``: pre-annotate a whole project through the bulk queue, with progress and resume.

Lists the project's tasks through label-studio-sdk, skips those that already hold a prediction
of the current ``model_version``, and enqueues chunks on the bulk queue a few at a time (the
queue never holds more than ``in_flight`` chunks of this run, so interactive work and Ctrl-C stay
responsive). Workers write each chunk to Label Studio in one request (``backend.jobs.bulk``):
an interrupted run leaves whole chunks, and re-running resumes where it stopped.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus, Retry

from backend import queues, state
from backend.labelconfig import LabelConfigError, parse_targets
from backend.settings import get_settings
from plugin.client import PluginError, api_error_text, project_tasks

log = logging.getLogger(__name__)

BULK_JOB = "backend.jobs.bulk.bulk_predict_job"
BULK_JOB_TIMEOUT_S = 1800


@dataclass
class Summary:
    """The outcome of one run."""

    listed: int = 0
    selected: int = 0
    skipped: int = 0  # already predicted with the current version (or labeled, with --unlabeled)
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # task id → reason
    not_started: int = 0
    replaced: int = 0
    versions: set[str] = field(default_factory=set)
    interrupted: bool = False

    def text(self) -> str:
        lines = [f"tasks listed {self.listed}, to predict {self.selected}, skipped {self.skipped} "
                 "(labeled, or already holding a prediction of the current version)",
                 f"done {self.done} (model_version {', '.join(sorted(self.versions)) or '-'}), "
                 f"old predictions replaced {self.replaced}, failed {len(self.failed)}"]
        if self.interrupted:
            lines.append(f"INTERRUPTED: {self.not_started} tasks not started; run the same command again to resume")
        for reason, count in Counter(self.failed.values()).most_common(10):
            example = next(t for t, r in self.failed.items() if r == reason)
            lines.append(f"  failed x{count} (e.g. task {example}): {reason}")
        return "\n".join(lines)


def list_tasks(ls, project_id: int) -> list[dict[str, Any]]:
    """id, data, labeled flag and predictions (id → model_version) of every task in the project."""
    return [{"id": int(raw["id"]), "data": raw.get("data") or {},
             "labeled": bool(raw.get("is_labeled")) or int(raw.get("total_annotations") or 0) > 0,
             "predictions": {int(p["id"]): p.get("model_version") or "" for p in raw["predictions"]}}
            for raw in project_tasks(ls, project_id)]


def plan(tasks: list[dict[str, Any]], version: str, ours: set[str], unlabeled_only: bool
         ) -> tuple[list[dict[str, Any]], dict[str, list[int]], int]:
    """(tasks to predict, task id → our older prediction ids to replace, how many were skipped)."""
    todo, replace, skipped = [], {}, 0
    for task in tasks:
        if (unlabeled_only and task["labeled"]) or version in task["predictions"].values():
            skipped += 1
            continue
        todo.append({"id": task["id"], "data": task["data"]})
        old = [pid for pid, v in task["predictions"].items() if v in ours]
        if old:
            replace[str(task["id"])] = old
    return todo, replace, skipped


def current_version(conn: redis.Redis, project_id: int) -> str:
    """The project's model_version as workers will stamp it; refuses when no worker runs."""
    from backend.maintenance import live_workers

    if not live_workers(conn, queues.BULK):
        error = state.engine_error(conn)
        raise PluginError("no worker is running to predict: start `lsclip serve` or `lsclip worker`"
                          + (f" (last model load failed: {error})" if error else ""))
    return state.model_version(conn, str(project_id))


def preannotate(ls, conn: redis.Redis, project_id: int, *, unlabeled_only: bool = True, batch: int = 256,
                in_flight: int = 4, keep_old: bool = False, select_version: bool = True, progress: bool = True,
                poll_s: float = 0.3) -> Summary:
    """Predict every selected task of the project through the bulk queue; returns the summary."""
    from tqdm import tqdm

    pid = str(project_id)
    try:
        project = ls.projects.get(project_id)
    except Exception as exc:  # noqa: BLE001
        raise PluginError(f"project {project_id} is not reachable in Label Studio ({api_error_text(exc)})") from exc
    label_config = project.label_config or ""
    try:
        parse_targets(label_config)
    except LabelConfigError as exc:
        raise PluginError(f"project {project_id}'s label config cannot be pre-annotated: {exc}") from exc
    # Label Studio calls /health and /setup of each connected backend on this request, so the workers
    # learn the project's host and token; without a connected backend they need LABEL_STUDIO_* themselves.
    connected = list(ls.ml.list(project=project_id))
    if not connected and not state.load_project(conn, pid).get("access_token"):
        log.warning("project %s has no ML backend connected: run `lsclip connect --project %s` first, or give the "
                    "workers LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY", project_id, project_id)
    if not state.load_project(conn, pid).get("label_config"):
        state.save_project(conn, pid, label_config, get_settings().label_studio_url, "")

    version = current_version(conn, project_id)
    tasks = list_tasks(ls, project_id)
    todo, replace, skipped = plan(tasks, version, set(state.versions(conn)) if not keep_old else set(), unlabeled_only)
    summary = Summary(listed=len(tasks), selected=len(todo), skipped=skipped)
    chunks = [todo[i:i + batch] for i in range(0, len(todo), max(1, batch))]
    run_id = uuid.uuid4().hex[:8]
    queue = queues.queue(queues.BULK, conn)
    active: dict[str, list[dict[str, Any]]] = {}
    bar = tqdm(total=len(todo), unit="task", desc=f"project {project_id} {version}", disable=not progress,
               mininterval=0.5, smoothing=0.1)
    next_chunk = 0
    interrupts = _Interrupts()
    with interrupts:
        try:
            while (next_chunk < len(chunks) and not interrupts.count) or active:
                if interrupts.count and not summary.interrupted:
                    summary.interrupted = True
                    summary.not_started = sum(len(c) for c in chunks[next_chunk:]) + _cancel_queued(conn, active)
                    if active:
                        log.warning("interrupted: waiting for %d running chunk(s) to finish writing (Ctrl-C again to "
                                    "stop waiting; they still finish on the worker)", len(active))
                if interrupts.count > 1:
                    summary.not_started += sum(len(c) for c in active.values())
                    break
                while not interrupts.count and next_chunk < len(chunks) and len(active) < in_flight:
                    chunk = chunks[next_chunk]
                    old = {str(t["id"]): replace[str(t["id"])] for t in chunk if str(t["id"]) in replace}
                    job = queue.enqueue_call(
                        BULK_JOB, args=(pid, label_config, chunk, old), job_id=f"bulk-{pid}-{run_id}-{next_chunk}",
                        timeout=BULK_JOB_TIMEOUT_S, result_ttl=3600, failure_ttl=7 * 24 * 3600,
                        retry=Retry(max=2, interval=[2, 10]))
                    active[job.id] = chunk
                    next_chunk += 1
                for job_id in _finished(conn, list(active), summary):
                    bar.update(len(active.pop(job_id)))
                time.sleep(poll_s)
        finally:
            bar.close()
    if interrupts.count and not summary.interrupted:
        summary.interrupted = True
        summary.not_started = sum(len(c) for c in chunks[next_chunk:])
    if select_version and summary.versions:
        newest = max(summary.versions, key=state.revision_of)
        ls.projects.update(id=project_id, model_version=newest)
    return summary


class _Interrupts:
    """Counts Ctrl-C presses instead of raising, so the run loop decides where to stop (never mid-enqueue)."""

    def __init__(self) -> None:
        self.count = 0
        self._previous = None

    def _handle(self, _signum, _frame) -> None:
        self.count += 1

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _finished(conn: redis.Redis, job_ids: list[str], summary: Summary) -> list[str]:
    """Job ids that reached a final state; their outcome is added to ``summary``."""
    done = []
    for job_id, job in zip(job_ids, Job.fetch_many(job_ids, connection=conn)):
        if job is None:
            continue
        status = job.get_status(refresh=False)
        if status == JobStatus.FINISHED:
            result = job.return_value() or {}
            summary.done += int(result.get("written", 0))
            summary.failed.update({str(k): v for k, v in (result.get("failed") or {}).items()})
            summary.replaced += int(result.get("deleted", 0))
            if result.get("model_version"):
                summary.versions.add(result["model_version"])
            done.append(job_id)
        elif status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED):
            reason = (job.exc_info or "job failed").strip().splitlines()[-1] if job.exc_info else f"job {status.value}"
            for task in job.args[2]:
                summary.failed[str(task["id"])] = f"chunk failed: {reason}"
            done.append(job_id)
    return done


def _cancel_queued(conn: redis.Redis, active: dict[str, list[dict[str, Any]]]) -> int:
    """Cancel this run's chunks that no worker started yet; returns how many tasks they held."""
    cancelled = 0
    for job_id in list(active):
        try:
            job = Job.fetch(job_id, connection=conn)
        except NoSuchJobError:
            continue
        if job.get_status() in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
            job.cancel()
            cancelled += len(active.pop(job_id))
    return cancelled
