"""``lsclip report``: agreement, calibration and learning per model_version, as PNG charts and one HTML page.

Reads every task (with its predictions and annotations) through label-studio-sdk and what each
calibration revision learned from (the backend's Redis), then writes ``report.json``,
``learning_curve.png``, ``reliability.png``, ``confusion.png`` and a self-contained ``index.html``
(images inlined) into the output folder.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import redis

from backend import state
from backend.calibration import store as calibration_store
from backend.evaluation.plots import confusion_plot, line_chart, reliability_diagram
from plugin.client import project_tasks
from plugin.report_data import pairs_from_tasks, public, summarize

log = logging.getLogger(__name__)


def build(ls, conn: redis.Redis | None, project_id: int, all_versions: bool = False) -> dict[str, Any]:
    """The report's numbers for a project (this backend's versions only unless ``all_versions``)."""
    versions = None if all_versions or conn is None else set(state.versions(conn))
    revisions = calibration_store.revisions(conn, str(project_id)) if conn is not None else []
    tasks = project_tasks(ls, project_id)
    summary = summarize(pairs_from_tasks(tasks, versions), revisions)
    summary["project"] = project_id
    summary["tasks"] = len(tasks)
    summary["annotated_tasks"] = sum(1 for t in tasks if any(not a.get("was_cancelled") for a in t["annotations"]))
    summary["revisions"] = revisions
    return summary


def write(summary: dict[str, Any], out: Path) -> dict[str, Path]:
    """Charts, report.json and index.html in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    rows = summary["versions"]
    if rows:
        names = list(rows)
        xs = [rows[v]["revision"] for v in names]
        files["learning_curve"] = line_chart(
            xs, {"agreement with annotators": [rows[v]["rate"] for v in names],
                 "ECE of shown scores": [rows[v]["ece"] for v in names]},
            out / "learning_curve.png", title=f"Project {summary['project']}: predictions vs annotators per revision",
            xlabel="calibration revision (model_version @rN)", ylabel="rate")
        newest = names[-1]
        files["reliability"] = reliability_diagram(rows[newest]["_reliability"], out / "reliability.png",
                                                   title=f"{newest} (n={rows[newest]['n']})")
        conf = rows[newest]["confusion"]
        if conf["labels"]:
            files["confusion"] = confusion_plot(np.asarray(conf["counts"]), conf["labels"], out / "confusion.png",
                                                title=f"{newest}: annotator (rows) vs prediction (columns)")
    (out / "report.json").write_text(json.dumps(public(summary), indent=2))
    files["json"] = out / "report.json"
    (out / "index.html").write_text(render_html(summary, files))
    files["html"] = out / "index.html"
    return files


def _img(path: Path | None, alt: str) -> str:
    if path is None:
        return f"<p class='empty'>{html.escape(alt)}: no data yet</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<figure><img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(alt)}</figcaption></figure>"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def render_html(summary: dict[str, Any], files: dict[str, Path]) -> str:
    """One self-contained page: the tables and the charts (inlined PNGs)."""
    rows = summary["versions"]
    version_rows = "".join(
        f"<tr><td>{html.escape(v)}</td><td>{r['corrections_learned']}</td><td>{r['n']}</td><td>{r['agree']}</td>"
        f"<td>{_pct(r['rate'])}</td><td>{_pct(r['ece'])}</td><td>{_pct(r['mean_score'])}</td></tr>"
        for v, r in rows.items())
    newest = list(rows)[-1] if rows else None
    class_rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{c['n']}</td><td>{_pct(c['rate'])}</td></tr>"
        for label, c in (rows[newest]["per_class"].items() if newest else []))
    title = f"lsclip report — project {summary['project']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; background: #fff; }}
h1 {{ color: #1f4e79; }} table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #bbb; padding: 4px 10px; text-align: right; }} th {{ background: #dde8f3; }}
td:first-child {{ text-align: left; }} figure {{ display: inline-block; margin: 1em; }} img {{ max-width: 560px; }}
.empty {{ color: #a00; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{summary['tasks']} tasks, {summary['annotated_tasks']} annotated; {summary['total']} prediction/annotation pairs
(a prediction counts only if it existed before the annotation). Agreement compares versions only over
similar tasks: tasks picked by an active-learning queue are the least certain ones, so a version shown mostly
on queued tasks agrees less than one shown on random tasks.</p>
<h2>Per model version</h2>
<table><tr><th>model_version</th><th>corrections learned</th><th>pairs</th><th>agreed</th><th>agreement</th>
<th>ECE</th><th>mean score</th></tr>{version_rows}</table>
<h2>Charts</h2>
{_img(files.get('learning_curve'), 'Learning curve')}
{_img(files.get('reliability'), 'Reliability of the newest version')}
{_img(files.get('confusion'), 'Confusion matrix of the newest version')}
<h2>Per class ({html.escape(newest or '–')}, by the annotator's label)</h2>
<table><tr><th>class</th><th>pairs</th><th>agreement</th></tr>{class_rows}</table>
</body></html>
"""
