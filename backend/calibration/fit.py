"""Fitting calibration layers on a support set, each kept only where cross-validation says it helps.

Layers, cheapest first (docs/ARCHITECTURE.md §5):

1. ``bias``    temperature + per-class bias on the zero-shot logits;
2. ``prompts`` per-class weights over the class's templates × synonyms;
3. ``cache``   a Tip-Adapter cache: affinity to the corrected examples added to the logits, its
               (α, β) chosen by leave-one-out on the support set;
4. ``head``    a linear head initialised from the class matrix and regularised toward it
               (only with ≥ ``HEAD_MIN_PER_CLASS`` examples per corrected class); with an engine
               that appends visual-only dimensions (the offline engine), a lightly regularised
               linear probe on those joins it, initialised at zero.

The head replaces the cache rather than stacking on it (both model the same corrected examples;
stacked, the cache's leave-one-out weight starves the head). The chain of kept layers is cross-validated as a whole (k-fold, k ≤ 5, every layer refitted on each
training fold); a layer joins only if the chain with it beats the chain without it: higher CV top-1,
or equal top-1 and lower CV log-loss. Zero-shot is the empty chain, so the result is never worse
than zero-shot on that check. Classes with no corrections keep zero bias, uniform prompt weights,
their text row in the head, and get nothing from the cache.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from backend.calibration.model import TargetCalibration
from backend.engines.base import l2_normalise, semantic_part, softmax, visual_part

log = logging.getLogger(__name__)

LAYERS = ("bias", "prompts", "cache", "head")
MIN_EXAMPLES = 4  # below this (or with < 2 corrected classes) zero-shot stays
HEAD_MIN_PER_CLASS = 4
TIP_ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # × the spread of the zero-shot logits
TIP_BETAS = (1.0, 3.0, 5.5, 10.0, 20.0)


@dataclass(frozen=True)
class Problem:
    """One target's support set and the zero-shot pieces the layers start from."""

    X: np.ndarray  # (n, d) normalised image embeddings
    y: np.ndarray  # (n,) class indices
    zs_matrix: np.ndarray  # (K, d) zero-shot class matrix
    prompt_emb: np.ndarray  # (K, P, d) per-prompt embeddings (padded)
    prompt_mask: np.ndarray  # (K, P) True where a prompt exists
    scale: float

    @property
    def n_classes(self) -> int:
        return self.zs_matrix.shape[0]

    @property
    def S(self) -> np.ndarray:
        """Text-aligned part of the embeddings."""
        return semantic_part(self.X, self.zs_matrix.shape[1])

    @property
    def V(self) -> np.ndarray:
        """Visual part of the embeddings (the cache's keys)."""
        return visual_part(self.X, self.zs_matrix.shape[1])

    def subset(self, idx: np.ndarray) -> "Problem":
        return replace(self, X=self.X[idx], y=self.y[idx])

    def present(self) -> np.ndarray:
        mask = np.zeros(self.n_classes, dtype=bool)
        mask[np.unique(self.y)] = True
        return mask


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float64))


def _lbfgs(params: list[torch.Tensor], loss_fn, iters: int = 60) -> None:
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


def raw_logits(cal: TargetCalibration, X: np.ndarray, zs_matrix: np.ndarray) -> np.ndarray:
    """Logits before temperature and bias."""
    return replace(cal, temperature=1.0, bias=None).logits(X, zs_matrix)


def _fit_temperature_bias(Z: np.ndarray, y: np.ndarray, present: np.ndarray, reg: float = 1e-2) -> tuple[float, np.ndarray]:
    """T and b minimising cross-entropy of Z / T + b (b only for corrected classes)."""
    Zt, yt, mask = _t(Z), torch.as_tensor(y, dtype=torch.long), _t(present.astype(float))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(Z.shape[1], dtype=torch.float64, requires_grad=True)

    def loss():
        logits = Zt / torch.exp(log_t) + b * mask
        return torch.nn.functional.cross_entropy(logits, yt) + reg * (b * mask).pow(2).sum()

    _lbfgs([log_t, b], loss)
    return float(torch.exp(log_t).detach()), (b * mask).detach().numpy().astype(np.float32)


def _fit_bias(p: Problem, base: TargetCalibration) -> TargetCalibration:
    T, b = _fit_temperature_bias(raw_logits(base, p.X, p.zs_matrix), p.y, p.present())
    return replace(base, temperature=T, bias=b, layer="bias")


def _fit_prompts(p: Problem, base: TargetCalibration, reg: float = 1e-2) -> TargetCalibration:
    E, mask, present = _t(p.prompt_emb), torch.as_tensor(p.prompt_mask), _t(p.present().astype(float))
    X, y = _t(p.S), torch.as_tensor(p.y, dtype=torch.long)
    alpha = torch.zeros(p.prompt_mask.shape, dtype=torch.float64, requires_grad=True)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(p.n_classes, dtype=torch.float64, requires_grad=True)

    def matrix():
        a = (alpha * present[:, None]).masked_fill(~mask, float("-inf"))
        w = torch.softmax(a, dim=1)
        M = (w[:, :, None] * E).sum(1)
        return M / M.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def loss():
        logits = p.scale * X @ matrix().T / torch.exp(log_t) + b * present
        return torch.nn.functional.cross_entropy(logits, y) + reg * (alpha * present[:, None]).pow(2).sum() \
            + reg * (b * present).pow(2).sum()

    _lbfgs([alpha, log_t, b], loss)
    M = matrix().detach().numpy().astype(np.float32)
    return replace(base, class_matrix=M, temperature=float(torch.exp(log_t).detach()),
                   bias=(b * present).detach().numpy().astype(np.float32), layer="prompts")


def _tip_terms(Xq: np.ndarray, keys: np.ndarray, values: np.ndarray, beta: float, loo: bool) -> np.ndarray:
    affinity = np.exp(-beta * (1.0 - Xq @ keys.T))
    if loo:
        np.fill_diagonal(affinity, 0.0)
    return affinity @ values


def _fit_cache(p: Problem, base: TargetCalibration) -> TargetCalibration:
    """Tip-Adapter: (α, β) by leave-one-out accuracy (then log-loss) on the support set."""
    values = np.eye(p.n_classes, dtype=np.float32)[p.y]
    Z = raw_logits(base, p.X, p.zs_matrix)
    spread = float(Z.std()) or 1.0
    best = None
    for beta in TIP_BETAS:
        terms = _tip_terms(p.V, p.V, values, beta, loo=True)
        for a in TIP_ALPHAS:
            alpha = a * spread
            probs = softmax(Z + alpha * terms)
            acc = float((probs.argmax(1) == p.y).mean())
            nll = float(-np.log(probs[np.arange(len(p.y)), p.y] + 1e-12).mean())
            key = (acc, -nll)
            if best is None or key > best[0]:
                best = (key, alpha, beta, Z + alpha * terms)
    _, alpha, beta, loo_logits = best
    T, b = _fit_temperature_bias(loo_logits, p.y, p.present())
    return replace(base, tip_alpha=alpha, tip_beta=beta, tip_keys=p.V.astype(np.float32), tip_values=values,
                   temperature=T, bias=b, layer="cache")


def _fit_head(p: Problem, base: TargetCalibration, reg: float = 1.0, visual_reg: float = 3e-5) -> TargetCalibration:
    """Linear head on the text-aligned part, initialised from the class matrix and pulled back to it; when the
    engine appends visual-only dimensions, a visual head (initialised at zero, lightly regularised) joins it."""
    W0 = base.class_matrix if base.class_matrix is not None else p.zs_matrix
    present = _t(p.present().astype(float))
    X, y, W0t = _t(p.S), torch.as_tensor(p.y, dtype=torch.long), _t(W0)
    has_visual = p.X.shape[1] > p.zs_matrix.shape[1]
    V = _t(p.V) if has_visual else None
    delta = torch.zeros(W0.shape, dtype=torch.float64, requires_grad=True)
    U = torch.zeros((p.n_classes, p.V.shape[1]) if has_visual else (0,), dtype=torch.float64, requires_grad=True)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(p.n_classes, dtype=torch.float64, requires_grad=True)
    tip = _t(raw_logits(replace(base, class_matrix=np.zeros_like(W0)), p.X, p.zs_matrix))  # the cache term alone

    def loss():
        W = W0t + delta * present[:, None]
        z = p.scale * X @ W.T + tip
        if has_visual:
            z = z + V @ (U * present[:, None]).T
        penalty = reg * (delta * present[:, None]).pow(2).sum() + 1e-2 * (b * present).pow(2).sum()
        if has_visual:
            penalty = penalty + visual_reg * (U * present[:, None]).pow(2).sum()
        return torch.nn.functional.cross_entropy(z / torch.exp(log_t) + b * present, y) + penalty

    # temperature stays at 1 here: a free temperature would sharpen instead of learning the probe
    # (the out-of-fold temperature of fit_target calibrates the final logits)
    _lbfgs([delta, U, b] if has_visual else [delta, b], loss, iters=100)
    W = (W0t + delta * present[:, None]).detach().numpy().astype(np.float32)
    visual = (U * present[:, None]).detach().numpy().astype(np.float32) if has_visual else None
    return replace(base, class_matrix=W, visual_head=visual, temperature=float(torch.exp(log_t).detach()),
                   bias=(b * present).detach().numpy().astype(np.float32), layer="head")


FITTERS = {"bias": _fit_bias, "prompts": _fit_prompts, "cache": _fit_cache, "head": _fit_head}


def fit_chain(chain: tuple[str, ...], p: Problem, template: TargetCalibration) -> TargetCalibration:
    """Fit the layers of ``chain`` in order, each on top of the previous."""
    cal = template
    for name in chain:
        cal = FITTERS[name](p, cal)
    return cal


def _folds(y: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """Stratified-ish folds: each class's examples dealt round-robin after a fixed shuffle."""
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(y), dtype=int)
    offset = 0
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        assignment[idx] = (np.arange(len(idx)) + offset) % k
        offset += len(idx)
    return [np.flatnonzero(assignment == f) for f in range(k)]


@dataclass(frozen=True)
class CVScore:
    accuracy: float
    log_loss: float

    def beats(self, other: "CVScore") -> bool:
        if self.accuracy > other.accuracy + 1e-9:
            return True
        return self.accuracy >= other.accuracy - 1e-9 and self.log_loss < other.log_loss - 1e-6


def cross_validate(chain: tuple[str, ...], p: Problem, template: TargetCalibration, k: int = 5) -> tuple[CVScore, np.ndarray]:
    """Out-of-fold top-1 and log-loss of ``chain`` refitted on each training fold, and the out-of-fold logits."""
    n = len(p.y)
    k = max(2, min(k, n))
    logits = np.zeros((n, p.n_classes))
    for held in _folds(p.y, k):
        if len(held) == 0:
            continue
        train = np.setdiff1d(np.arange(n), held)
        cal = fit_chain(chain, p.subset(train), template) if chain else template
        logits[held] = cal.logits(p.X[held], p.zs_matrix)
    probs = softmax(logits)
    accuracy = float((probs.argmax(1) == p.y).mean())
    log_loss = float(-np.log(probs[np.arange(n), p.y] + 1e-12).mean())
    return CVScore(accuracy, log_loss), logits


def _out_of_fold_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """A global temperature fitted on out-of-fold logits: layers fitted in-sample are over-confident."""
    Z, yt = _t(logits), torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    _lbfgs([log_t], lambda: torch.nn.functional.cross_entropy(Z / torch.exp(log_t), yt))
    return float(torch.exp(log_t).detach())


def fit_target(from_name: str, kind: str, classes: list[str], p: Problem) -> TargetCalibration:
    """The best chain of layers for one single-choice (or taxonomy) target, fitted on all of ``p``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: threads only add contention
    try:
        return _fit_target(from_name, kind, classes, p)
    finally:
        torch.set_num_threads(threads)


def _fit_target(from_name: str, kind: str, classes: list[str], p: Problem) -> TargetCalibration:
    started = time.perf_counter()
    template = TargetCalibration(from_name=from_name, kind=kind, classes=classes, scale=p.scale)
    n, present = len(p.y), p.present()
    if n < MIN_EXAMPLES or present.sum() < 2:
        template.stats = {"n": int(n), "reason": f"needs ≥ {MIN_EXAMPLES} corrections over ≥ 2 classes"}
        return template
    chain: tuple[str, ...] = ()
    best, best_logits = cross_validate(chain, p, template)
    zero_shot = best
    tried = {}
    per_class = np.bincount(p.y, minlength=p.n_classes)[present]
    for layer in LAYERS:
        if layer == "head" and per_class.min() < HEAD_MIN_PER_CLASS:
            continue
        # the head is an alternative to the cache (a trained model of the same examples), not stacked on it
        candidate = tuple(l for l in chain if l != "cache") + (layer,) if layer == "head" else chain + (layer,)
        score, logits = cross_validate(candidate, p, template)
        tried[layer] = {"cv_top1": score.accuracy, "cv_log_loss": score.log_loss}
        if score.beats(best):
            chain, best, best_logits = candidate, score, logits
    cal = fit_chain(chain, p, template) if chain else template
    if chain:
        t2 = _out_of_fold_temperature(best_logits, p.y)
        cal = replace(cal, temperature=cal.temperature * t2, bias=None if cal.bias is None else cal.bias / t2)
    cal.layer = chain[-1] if chain else "zero-shot"
    cal.stats = {
        "n": int(n), "classes_corrected": int(present.sum()), "chain": list(chain),
        "cv_top1": best.accuracy, "cv_log_loss": best.log_loss,
        "cv_top1_zero_shot": zero_shot.accuracy, "cv_log_loss_zero_shot": zero_shot.log_loss,
        "tried": tried, "fit_seconds": round(time.perf_counter() - started, 3),
    }
    return cal


def fit_thresholds(from_name: str, classes: list[str], probs: np.ndarray, Y: np.ndarray, default: float) -> TargetCalibration:
    """Multi-choice: per-class thresholds maximising F1 on the support set (classes without both
    positive and negative examples keep ``default``)."""
    thresholds = np.full(len(classes), default, dtype=np.float32)
    for k in range(len(classes)):
        pos, neg = probs[Y[:, k] > 0, k], probs[Y[:, k] == 0, k]
        if len(pos) == 0 or len(neg) == 0:
            continue
        candidates = np.unique(np.concatenate([pos, neg]))
        best_f1, best_t = -1.0, default
        for j, t in enumerate(candidates):
            pred = probs[:, k] >= t
            tp = float((pred & (Y[:, k] > 0)).sum())
            f1 = 2 * tp / (pred.sum() + (Y[:, k] > 0).sum())
            if f1 > best_f1 + 1e-9:
                # halfway to the next lower score: a margin on both sides
                best_f1, best_t = f1, float(t + candidates[j - 1]) / 2 if j > 0 else float(t) / 2
        thresholds[k] = best_t
    return TargetCalibration(from_name=from_name, kind="multiple", classes=classes, layer="thresholds",
                             thresholds=thresholds, stats={"n": int(len(Y))})


def prompt_tensor(per_class: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Pad per-class prompt embeddings (P_k, d) into (K, P, d) with a mask."""
    width = max(len(e) for e in per_class)
    d = per_class[0].shape[1]
    out = np.zeros((len(per_class), width, d), dtype=np.float32)
    mask = np.zeros((len(per_class), width), dtype=bool)
    for k, emb in enumerate(per_class):
        out[k, : len(emb)] = l2_normalise(emb)
        mask[k, : len(emb)] = True
    return out, mask
