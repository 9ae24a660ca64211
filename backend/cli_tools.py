"""Subcommands beyond the service itself: evaluation and the Label Studio workflow tools."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger("lsclip")


def cmd_eval(args: argparse.Namespace) -> int:
    """Predict a labelled folder through the /predict code path and report accuracy and calibration."""
    from backend import runtime
    from backend.evaluation import harness
    from backend.evaluation.plots import reliability_diagram
    from backend.settings import get_settings

    settings = get_settings()
    engine = runtime.engine()
    cache_conn = None
    if settings.redis_url:
        from backend import redis_conn

        cache_conn = redis_conn.cache()
    if args.support:
        from backend.evaluation.fewshot import evaluate_fewshot

        result = evaluate_fewshot(engine, args.folder, args.support, args.shots, args.seeds, settings,
                                  limit=args.limit, cache_conn=cache_conn)
        print(json.dumps(result) if args.json else json.dumps(result, indent=2))
        return 0
    summary = harness.evaluate(engine, args.folder, settings, limit=args.limit, cache_conn=cache_conn)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        png = reliability_diagram(summary["_reliability"], out / "reliability.png", title=f"{engine.name} on {Path(args.folder).name}")
        log.info("reliability diagram written to %s", png)
    if args.json:
        public = harness.public(summary)
        print(json.dumps({k: public[k] for k in ("n", "top1", "ece", "per_class", "images_per_s", "errors")}))
    else:
        print(f"model: {engine.name} ({engine.model_id})")
        print(harness.format_text(summary))
    return 0


def cmd_calibration(args: argparse.Namespace) -> int:
    """Export or import a project's calibration and support set as one JSON file."""
    from backend import redis_conn
    from backend.calibration import portable

    conn = redis_conn.durable()
    if args.action == "export":
        blob = portable.export_project(conn, str(args.project))
        Path(args.file).write_text(json.dumps(blob))
        log.info("project %s: revision r%s and %d corrections written to %s", args.project, blob["revision"],
                 len(blob["support"]), args.file)
    else:
        revision = portable.import_project(conn, str(args.project), json.loads(Path(args.file).read_text()))
        print(json.dumps({"project": str(args.project), "revision": revision}))
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    """Agreement between shown predictions and annotators, per model_version (JSON)."""
    from backend import redis_conn
    from backend.calibration import agreement, store

    conn = redis_conn.durable()
    pid = str(args.project)
    print(json.dumps({"project": pid, "versions": agreement.summary(conn, pid), "revisions": store.revisions(conn, pid)},
                     indent=2))
    return 0


def add_tool_commands(sub: argparse._SubParsersAction) -> None:
    """Register the tool subcommands on the ``lsclip`` parser."""
    ev = sub.add_parser("eval", help="accuracy and calibration on a labelled folder (labels.csv: path,label)")
    ev.add_argument("folder", help="folder with labels.csv and the images it names")
    ev.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ev.add_argument("--out", default="", help="folder for the reliability diagram PNG")
    ev.add_argument("--limit", type=int, default=0, help="at most N images per class (0: all)")
    ev.add_argument("--support", default="", help="pool folder of corrections (few-shot calibration)")
    ev.add_argument("--shots", type=int, default=8, help="corrections per class drawn from --support")
    ev.add_argument("--seeds", type=int, default=5, help="random draws of the support set to average over")
    ev.set_defaults(func=cmd_eval)

    cal = sub.add_parser("calibration", help="export/import a project's calibration and corrections")
    cal.add_argument("action", choices=["export", "import"])
    cal.add_argument("--project", required=True)
    cal.add_argument("file")
    cal.set_defaults(func=cmd_calibration)

    ag = sub.add_parser("agreement", help="agreement of predictions with annotators per model_version (JSON)")
    ag.add_argument("--project", required=True)
    ag.set_defaults(func=cmd_agreement)
