"""The accuracy harness: metrics on hand-made examples, and `lsclip eval` through the /predict code path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from backend.evaluation import metrics
from backend.evaluation.harness import label_config_for, load_labelled
from backend.labelconfig import parse_targets
from tests.conftest import ROOT, SHARED_DATA, child_env


def test_ece_on_a_hand_made_example():
    # bin [0.8, 0.867): confidences 0.8, 0.8, 0.8, 0.8 with 2 of 4 right -> gap 0.3, weight 4/6
    # bin [0.333, 0.4): confidence 0.35 twice, both right -> gap 0.65, weight 2/6
    correct = [True, True, False, False, True, True]
    conf = [0.8, 0.8, 0.8, 0.8, 0.35, 0.35]
    expected = (4 / 6) * 0.3 + (2 / 6) * 0.65
    assert metrics.expected_calibration_error(correct, conf, bins=15) == pytest.approx(expected)
    assert metrics.expected_calibration_error([True] * 5, [1.0] * 5) == pytest.approx(0.0)
    assert metrics.expected_calibration_error([False] * 5, [1.0] * 5) == pytest.approx(1.0)


def test_reliability_bins_include_both_ends():
    rel = metrics.reliability([True, False], [0.0, 1.0], bins=15)
    assert rel.counts[0] == 1 and rel.counts[-1] == 1 and rel.counts.sum() == 2


def test_confusion_and_per_class_on_a_hand_made_example():
    truth = ["cat", "cat", "dog", "dog", "dog"]
    pred = ["cat", "dog", "dog", "dog", "cat"]
    counts = metrics.confusion_matrix(truth, pred, ["cat", "dog"])
    assert counts.tolist() == [[1, 1], [1, 2]]
    assert metrics.per_class_accuracy(truth, pred, ["cat", "dog"]) == {"cat": 0.5, "dog": pytest.approx(2 / 3)}
    assert metrics.top1(truth, pred) == pytest.approx(3 / 5)


def test_label_config_built_from_the_label_set_parses_like_label_studios():
    (target,) = parse_targets(label_config_for(["gas_pump", "cat & dog", 'say "hi"']))
    assert [c.value for c in target.classes] == ["gas_pump", "cat & dog", 'say "hi"']
    assert target.classes[0].texts == ("gas pump",)


def test_lsclip_eval_json_through_the_predict_path(base_env, tmp_path):
    if not (SHARED_DATA / "cifar10-eval").exists():
        pytest.skip("shared data missing")
    env = child_env(base_env)
    env.pop("REDIS_URL")
    out = subprocess.run([sys.executable, "-m", "backend.cli", "eval", str(SHARED_DATA / "cifar10-eval"), "--limit", "3",
                          "--json", "--out", str(tmp_path)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["n"] == 30 and 0.0 <= result["top1"] <= 1.0 and 0.0 <= result["ece"] <= 1.0
    assert set(result["per_class"]) == set(load_labelled(SHARED_DATA / "cifar10-eval").classes)
    assert result["images_per_s"] > 0 and result["errors"] == 0
    png = tmp_path / "reliability.png"
    assert png.stat().st_size > 5000
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"))
    assert pixels.std() > 10, "the diagram is not blank"


def test_lsclip_eval_with_support_feeds_corrections_through_the_learn_path(base_env):
    import psutil

    if not (SHARED_DATA / "cifar10-pool").exists():
        pytest.skip("shared data missing")
    env = child_env(base_env)
    env.pop("REDIS_URL")
    before = {p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")}
    out = subprocess.run([sys.executable, "-m", "backend.cli", "eval", str(SHARED_DATA / "cifar10-eval"), "--limit", "3",
                          "--support", str(SHARED_DATA / "cifar10-pool"), "--shots", "2", "--seeds", "2", "--json"],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["shots"] == 2 and result["seeds"] == 2 and len(result["per_seed"]) == 2
    for part in ("zero_shot", "calibrated"):
        assert 0.0 <= result[part]["top1"] <= 1.0 and 0.0 <= result[part]["ece"] <= 1.0
    # 20 corrections over 10 classes went through learn_job: a calibration revision was made (or zero-shot kept by CV)
    assert all(run["layer"] in ("zero-shot", "bias", "prompts", "cache", "head") for run in result["per_seed"])
    assert "event" in out.stderr and "applied" in out.stderr
    after = {p.pid for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("redis-server")}
    assert after <= before, "the temporary embedded Redis was stopped"
