"""Calibration layers on synthetic support sets: never below zero-shot on the CV check, thresholds, round trips."""

from __future__ import annotations

import numpy as np
import pytest

from backend.calibration.fit import Problem, fit_target, fit_thresholds, prompt_tensor
from backend.calibration.model import TargetCalibration
from backend.engines.base import l2_normalise


def _problem(seed: int, n_per_class: int = 6, k: int = 4, d: int = 16, noise: float = 0.6, wrong_text: bool = True):
    """Classes are clusters in embedding space; the 'text' embeddings point elsewhere when ``wrong_text``."""
    rng = np.random.default_rng(seed)
    centers = l2_normalise(rng.normal(size=(k, d)))
    X = np.concatenate([centers[c] + noise * rng.normal(size=(n_per_class, d)) / np.sqrt(d) for c in range(k)])
    y = np.repeat(np.arange(k), n_per_class)
    text = l2_normalise(rng.normal(size=(k, d))) if wrong_text else centers
    prompts = [l2_normalise(text[c] + 0.1 * rng.normal(size=(3, d))) for c in range(k)]
    emb, mask = prompt_tensor(prompts)
    text = l2_normalise(np.stack([p.mean(0) for p in prompts]))  # the zero-shot matrix is the prompt ensemble
    return Problem(X=l2_normalise(X).astype(np.float32), y=y, zs_matrix=text.astype(np.float32), prompt_emb=emb,
                   prompt_mask=mask, scale=20.0), centers


@pytest.mark.parametrize("seed", range(6))
def test_cv_check_never_below_zero_shot(seed):
    problem, _ = _problem(seed, wrong_text=seed % 2 == 0)
    cal = fit_target("label", "single", ["a", "b", "c", "d"], problem)
    assert cal.stats["cv_top1"] >= cal.stats["cv_top1_zero_shot"]
    assert cal.stats["cv_log_loss"] <= cal.stats["cv_log_loss_zero_shot"] + 1e-9 or cal.stats["cv_top1"] > cal.stats["cv_top1_zero_shot"]


def test_corrections_fix_a_misleading_text_prior():
    problem, centers = _problem(1, wrong_text=True)
    cal = fit_target("label", "single", ["a", "b", "c", "d"], problem)
    assert cal.layer != "zero-shot"
    fresh = l2_normalise(centers + 0.05 * np.random.default_rng(9).normal(size=centers.shape)).astype(np.float32)
    zero_shot = (problem.scale * fresh @ problem.zs_matrix.T).argmax(1)
    calibrated = cal.probabilities(fresh, problem.zs_matrix).argmax(1)
    assert (calibrated == np.arange(4)).mean() > (zero_shot == np.arange(4)).mean()
    assert (calibrated == np.arange(4)).all()


def test_too_few_corrections_keep_zero_shot():
    problem, _ = _problem(0)
    small = problem.subset(np.array([0, 6, 12]))
    cal = fit_target("label", "single", ["a", "b", "c", "d"], small)
    assert cal.layer == "zero-shot" and cal.bias is None and cal.class_matrix is None


def test_uncorrected_classes_keep_zero_bias_and_their_text_row():
    problem, _ = _problem(2, n_per_class=6, k=4)
    only_two = problem.subset(np.flatnonzero(problem.y < 2))
    cal = fit_target("label", "single", ["a", "b", "c", "d"], only_two)
    if cal.bias is not None:
        assert np.all(cal.bias[2:] == 0)
    if cal.class_matrix is not None:
        assert np.allclose(cal.class_matrix[2:], problem.zs_matrix[2:], atol=1e-5)


def test_multi_choice_thresholds_separate_positives():
    probs = np.array([[0.9, 0.2], [0.8, 0.6], [0.3, 0.7], [0.1, 0.1]])
    Y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    cal = fit_thresholds("tags", ["x", "y"], probs, Y, default=0.5)
    chosen = probs >= cal.thresholds
    assert (chosen == Y.astype(bool)).all()
    lonely = fit_thresholds("tags", ["x", "y"], probs[:1], Y[:1], default=0.5)
    assert lonely.thresholds.tolist() == [0.5, 0.5]


def test_json_round_trip_keeps_predictions():
    problem, _ = _problem(3)
    cal = fit_target("label", "single", ["a", "b", "c", "d"], problem)
    again = TargetCalibration.from_json(cal.to_json())
    assert np.allclose(cal.probabilities(problem.X, problem.zs_matrix), again.probabilities(problem.X, problem.zs_matrix))
