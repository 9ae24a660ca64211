"""The plugin's own logic without Label Studio: ranking strategies, the resume plan, the report's numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plugin import strategies
from plugin.preannotate import Summary, plan
from plugin.report import render_html, write
from plugin.report_data import Pair, pairs_from_tasks, summarize


def rec(probs, kind="single", name="label"):
    return {"version": "e@r0", "kinds": {name: kind}, "probs": {name: list(probs)}}


def test_least_confidence_margin_and_entropy_rank_differently():
    records = {
        "1": rec([0.50, 0.49, 0.01]),  # low top, tiny margin
        "2": rec([0.40, 0.30, 0.30]),  # lowest top, flat (max entropy)
        "3": rec([0.95, 0.04, 0.01]),  # certain
        "4": rec([0.53, 0.47, 0.00]),  # small margin, low entropy
    }
    assert [t for t, _ in strategies.rank("least-confidence", records, 4)] == ["2", "1", "4", "3"]
    assert [t for t, _ in strategies.rank("margin", records, 4)] == ["1", "4", "2", "3"]
    assert [t for t, _ in strategies.rank("entropy", records, 4)][0] == "2"
    assert [t for t, _ in strategies.rank("entropy", records, 4)][-1] == "3"
    assert strategies.rank("least-confidence", records, 2) == strategies.rank("least-confidence", records, 4)[:2]


def test_the_least_certain_target_decides_and_multi_choice_is_per_class():
    two = {"kinds": {"a": "single", "b": "multiple"}, "probs": {"a": [0.99, 0.01], "b": [0.5, 0.02]}}
    one = {"kinds": {"a": "single", "b": "multiple"}, "probs": {"a": [0.7, 0.3], "b": [0.98, 0.01]}}
    # task "two" is certain on a but has a coin-flip class in b
    assert strategies.task_uncertainty(two, "least-confidence") == pytest.approx(1.0)
    assert strategies.task_uncertainty(one, "least-confidence") == pytest.approx(0.3)
    assert [t for t, _ in strategies.rank("least-confidence", {"one": one, "two": two}, 2)] == ["two", "one"]


def test_entropy_is_normalised_and_unknown_strategies_are_refused():
    assert strategies.target_uncertainty(np.full(10, 0.1), "single", "entropy") == pytest.approx(1.0)
    assert strategies.target_uncertainty(np.array([1.0, 0, 0]), "single", "entropy") == pytest.approx(0.0)
    with pytest.raises(ValueError, match="least-confidence"):
        strategies.rank("random", {}, 3)


def test_diverse_spreads_the_batch_over_clusters():
    rng = np.random.default_rng(0)
    records, vectors = {}, {}
    for i in range(15):  # 5 tight clusters of 3 near-duplicates; uncertainty falls from cluster 0 to 4
        c = i // 3
        top = 0.34 + 0.1 * c + 0.01 * (i % 3)
        records[str(i)] = rec([top, (1 - top) / 2, (1 - top) / 2])
        vectors[str(i)] = np.eye(5, 16)[c] * 10 + rng.normal(0, 0.1, 16)
    by_entropy = strategies.rank("entropy", records, 4)
    assert {int(t) // 3 for t, _ in by_entropy} == {0, 1}, "plain uncertainty picks near-duplicates"
    diverse = strategies.rank("diverse", records, 4, vectors)  # among the 12 most uncertain: clusters 0-3
    assert {int(t) // 3 for t, _ in diverse} == {0, 1, 2, 3}
    assert diverse[0][0] == by_entropy[0][0], "starts from the most uncertain"


def test_k_center_greedy_picks_the_farthest_point_next():
    x = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    assert strategies.k_center_greedy(x, 3, first=0) == [0, 3, 2]


def test_resume_plan_skips_current_version_and_labeled_and_replaces_only_our_old_predictions():
    tasks = [
        {"id": 1, "data": {}, "labeled": False, "predictions": {10: "e@r1"}},  # current: skipped
        {"id": 2, "data": {}, "labeled": False, "predictions": {11: "e@r0", 12: "yolo-v8"}},  # ours old + foreign
        {"id": 3, "data": {}, "labeled": True, "predictions": {}},
        {"id": 4, "data": {}, "labeled": False, "predictions": {}},
    ]
    todo, replace, skipped = plan(tasks, "e@r1", {"e@r0", "e@r1"}, unlabeled_only=True)
    assert [t["id"] for t in todo] == [2, 4] and skipped == 2
    assert replace == {"2": [11]}
    todo, _, skipped = plan(tasks, "e@r1", {"e@r0", "e@r1"}, unlabeled_only=False)
    assert [t["id"] for t in todo] == [2, 3, 4] and skipped == 1


def test_summary_groups_failures_by_reason():
    s = Summary(listed=5, selected=3, skipped=2, done=1, failed={"7": "HTTP 404", "8": "HTTP 404"}, versions={"e@r0"})
    text = s.text()
    assert "to predict 3, skipped 2" in text and "failed x2 (e.g. task 7): HTTP 404" in text


def _task(tid, annotations, predictions):
    return {"id": tid, "annotations": annotations, "predictions": predictions}


def _region(label, score=None):
    region = {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": [label]}}
    if score is not None:
        region["score"] = score
    return region


def test_report_counts_only_predictions_made_before_the_annotation():
    tasks = [
        _task(1, [{"result": [_region("cat")], "created_at": "2026-01-02T00:00:00Z"}],
              [{"model_version": "e@r0", "result": [_region("cat", 0.9)], "score": 0.9, "created_at": "2026-01-01T00:00:00Z"},
               {"model_version": "e@r1", "result": [_region("cat", 0.99)], "score": 0.99, "created_at": "2026-01-03T00:00:00Z"}]),
        _task(2, [{"result": [_region("dog")], "created_at": "2026-01-05T00:00:00Z"}],
              [{"model_version": "e@r1", "result": [_region("cat", 0.6)], "score": 0.6, "created_at": "2026-01-04T00:00:00Z"},
               {"model_version": "other", "result": [_region("dog")], "score": 1.0, "created_at": "2026-01-04T00:00:00Z"}]),
        _task(3, [{"result": [_region("dog")], "created_at": "2026-01-05T00:00:00Z", "was_cancelled": True}],
              [{"model_version": "e@r1", "result": [_region("dog", 0.7)], "score": 0.7, "created_at": "2026-01-04T00:00:00Z"}]),
    ]
    pairs = pairs_from_tasks(tasks, versions={"e@r0", "e@r1"})
    assert sorted((p.task_id, p.version, p.agree) for p in pairs) == [(1, "e@r0", True), (2, "e@r1", False)]
    summary = summarize(pairs, revisions=[{"revision": 1, "support": 12}])
    r0, r1 = summary["versions"]["e@r0"], summary["versions"]["e@r1"]
    assert (r0["n"], r0["agree"], r0["rate"], r0["corrections_learned"]) == (1, 1, 1.0, 0)
    assert (r1["n"], r1["agree"], r1["rate"], r1["corrections_learned"]) == (1, 0, 0.0, 12)
    assert r0["ece"] == pytest.approx(0.1) and r1["ece"] == pytest.approx(0.6)
    assert r1["confusion"] == {"labels": ["cat", "dog"], "counts": [[0, 0], [1, 0]]}
    assert r1["per_class"] == {"dog": {"n": 1, "agree": 0, "rate": 0.0}}


def test_report_numbers_are_exact_on_a_known_sample():
    pairs = [Pair(i, "e@r0", "label", ("a",) if i % 4 else ("b",), ("a",), 0.75) for i in range(8)]
    row = summarize(pairs)["versions"]["e@r0"]
    assert row["agree"] == 6 and row["rate"] == 0.75
    assert row["ece"] == pytest.approx(0.0), "confidence 0.75 and accuracy 0.75: perfectly calibrated"


def test_report_files_and_self_contained_html(tmp_path):
    pairs = [Pair(i, f"e@r{i % 2}", "label", ("a",) if i % 3 else ("b",), ("a",), 0.6 + 0.03 * (i % 10))
             for i in range(30)]
    summary = summarize(pairs, [{"revision": 1, "support": 9}])
    summary.update(project=7, tasks=40, annotated_tasks=30, revisions=[])
    files = write(summary, tmp_path)
    for name in ("learning_curve", "reliability", "confusion", "json", "html"):
        assert files[name].exists() and files[name].stat().st_size > 500
    page = files["html"].read_text()
    assert page.count("data:image/png;base64,") == 3 and "src='http" not in page
    assert "e@r1" in page and "<td>9</td>" in page
    assert json.loads(files["json"].read_text())["versions"]["e@r0"]["n"] == 15
    empty = render_html({"project": 1, "tasks": 0, "annotated_tasks": 0, "total": 0, "versions": {}}, {})
    assert "no data yet" in empty
