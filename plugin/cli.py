"""The Label Studio-side ``lsclip`` subcommands: connect, preannotate, queue, report, sync."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from backend.settings import get_settings
from plugin.client import PluginError, label_studio

log = logging.getLogger("lsclip")


def _redis():
    from backend import redis_conn

    try:
        conn = redis_conn.durable()
        conn.ping()
        return conn
    except redis_conn.RedisNotConfigured as exc:
        raise PluginError(str(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - redis errors, socket errors
        raise PluginError(f"the backend's Redis does not answer ({type(exc).__name__}): check REDIS_URL") from exc


def cmd_connect(args: argparse.Namespace) -> int:
    from plugin.connect import connect, format_report

    settings = get_settings()
    report = connect(label_studio(settings), args.project, args.url or settings.backend_url, settings)
    print(format_report(report))
    return 0 if report.ok else 1


def cmd_preannotate(args: argparse.Namespace) -> int:
    from plugin.preannotate import preannotate

    summary = preannotate(label_studio(), _redis(), args.project, unlabeled_only=not args.all, batch=args.batch,
                          in_flight=args.in_flight, keep_old=args.keep_old, progress=not args.no_progress)
    print(summary.text())
    return 0 if not summary.failed and not summary.interrupted else 1


def cmd_queue(args: argparse.Namespace) -> int:
    from plugin.active_queue import build_queue, create_view, export

    ls = label_studio()
    result = build_queue(ls, _redis(), args.project, args.strategy, args.size)
    if not args.no_view:
        create_view(ls, args.project, result, args.title)
    if args.export:
        export(result, Path(args.export))
    print(result.text())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from plugin.report import build, write

    try:
        conn = _redis()
    except PluginError as exc:
        log.warning("%s: reporting every model_version found in Label Studio, without revision details", exc)
        conn = None
    summary = build(label_studio(), conn, args.project, all_versions=args.all_versions)
    files = write(summary, Path(args.out))
    for version, row in summary["versions"].items():
        rate = "-" if row["rate"] is None else f"{row['rate'] * 100:.1f} %"
        print(f"{version}: {row['n']} pairs, agreement {rate}, ECE {row['ece'] * 100:.1f} %, "
              f"learned from {row['corrections_learned']} corrections")
    print(f"report written to {files['html']}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Rebuild a project's support set from Label Studio (all annotations) through a worker, then refit."""
    import uuid

    from backend import queues, redis_conn, state
    from backend.api.results_wait import wait_for_result

    settings = get_settings()
    conn = _redis()
    pid = str(args.project)
    project = state.load_project(conn, pid)
    if settings.label_studio_url and not project.get("hostname"):
        state.save_project(conn, pid, project.get("label_config", ""), settings.label_studio_url, "")
    event_id = uuid.uuid4().hex
    state.record_event(conn, event_id, {"action": state.TRAIN_ACTION, "project": {"id": pid}})
    job = queues.enqueue_learn(conn, event_id, timeout_s=900)
    waiting = redis_conn.connect(redis_conn.url(), socket_timeout=args.timeout + 10)
    result = wait_for_result(job.id, waiting, args.timeout)
    print(json.dumps({**result, "model_version": state.model_version(conn, pid)}))
    return 0


def _guarded(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except PluginError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def add_plugin_commands(sub: argparse._SubParsersAction) -> None:
    """Register the Label Studio workflow subcommands on the ``lsclip`` parser."""
    from plugin.strategies import STRATEGIES

    co = sub.add_parser("connect", help="register this backend on a Label Studio project (ML backend + webhook) and check it")
    co.add_argument("--project", type=int, required=True)
    co.add_argument("--url", default="", help="the backend URL as Label Studio reaches it (LSCLIP_BACKEND_URL)")
    co.set_defaults(func=_guarded(cmd_connect))

    pa = sub.add_parser("preannotate", help="pre-annotate a whole project through the bulk queue (progress, resumable)")
    pa.add_argument("--project", type=int, required=True)
    which = pa.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every task, labeled ones included")
    which.add_argument("--unlabeled", action="store_true", help="only tasks without annotations (default)")
    pa.add_argument("--batch", type=int, default=256, help="tasks per bulk job (one write to Label Studio each)")
    pa.add_argument("--in-flight", type=int, default=4, help="bulk jobs of this run queued at once")
    pa.add_argument("--keep-old", action="store_true", help="keep this backend's older predictions on re-predicted tasks")
    pa.add_argument("--no-progress", action="store_true", help="no progress bar")
    pa.set_defaults(func=_guarded(cmd_preannotate))

    qu = sub.add_parser("queue", help="rank unlabeled tasks for active learning: a Data Manager tab and/or CSV/JSON")
    qu.add_argument("--project", type=int, required=True)
    qu.add_argument("--strategy", choices=STRATEGIES, default="least-confidence")
    qu.add_argument("--size", type=int, default=50)
    qu.add_argument("--title", default="", help="the Data Manager tab's title")
    qu.add_argument("--export", default="", help="also write the ranking to this .csv or .json file")
    qu.add_argument("--no-view", action="store_true", help="do not create a Data Manager tab")
    qu.set_defaults(func=_guarded(cmd_queue))

    re = sub.add_parser("report", help="agreement, calibration and learning per model_version: PNG charts + HTML")
    re.add_argument("--project", type=int, required=True)
    re.add_argument("--out", default="lsclip-report")
    re.add_argument("--all-versions", action="store_true", help="include predictions of other models too")
    re.set_defaults(func=_guarded(cmd_report))

    sy = sub.add_parser("sync", help="rebuild a project's corrections from Label Studio's API and refit (needs a worker)")
    sy.add_argument("--project", type=int, required=True)
    sy.add_argument("--timeout", type=float, default=600)
    sy.set_defaults(func=_guarded(cmd_sync))
