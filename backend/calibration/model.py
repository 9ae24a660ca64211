"""A fitted calibration for one target, in one uniform form every layer produces.

    logits(X) = (scale · X Mᵀ + α · exp(−β (1 − X Kᵀ)) V + X Uᵀ) / T + b

- ``M`` (K×d): the class matrix: zero-shot text embeddings, or prompt-weighted ones (layer 2),
  or a linear head (layer 4);
- ``K, V, α, β``: the Tip-Adapter cache (layer 3): support embeddings (their visual part when the
  engine appends one, see ``backend.engines.base.visual_part``), their one-hot labels, and
  the two hyper-parameters (α = 0 when the layer is not kept);
- ``U`` (K×d_v): a linear probe on the visual-only dimensions (layer 4, offline engine only);
- ``T, b``: temperature and per-class bias (layer 1; classes with no corrections keep b = 0).

Multi-choice targets keep the engine's own probabilities and learn per-class ``thresholds``.
Stored as plain JSON (arrays base64-encoded float32) in Redis and in export files.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.engines.base import semantic_part, softmax, visual_part


def _enc(arr: np.ndarray | None) -> dict[str, Any] | None:
    if arr is None:
        return None
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return {"shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode()}


def _dec(obj: dict[str, Any] | None) -> np.ndarray | None:
    if obj is None:
        return None
    return np.frombuffer(base64.b64decode(obj["b64"]), dtype=np.float32).reshape(obj["shape"]).copy()


@dataclass
class TargetCalibration:
    """Calibrated scoring for one target (by its ``from_name``) over its class values."""

    from_name: str
    kind: str
    classes: list[str]
    layer: str = "zero-shot"  # the highest layer kept
    scale: float = 100.0
    class_matrix: np.ndarray | None = None  # None: the zero-shot matrix
    temperature: float = 1.0
    bias: np.ndarray | None = None
    tip_alpha: float = 0.0
    tip_beta: float = 1.0
    tip_keys: np.ndarray | None = None
    tip_values: np.ndarray | None = None
    visual_head: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)

    def logits(self, X: np.ndarray, zero_shot_matrix: np.ndarray) -> np.ndarray:
        M = self.class_matrix if self.class_matrix is not None else zero_shot_matrix
        text_dim = M.shape[1]
        out = self.scale * (semantic_part(X, text_dim) @ M.T)
        if self.tip_alpha and self.tip_keys is not None and len(self.tip_keys):
            affinity = np.exp(-self.tip_beta * (1.0 - visual_part(X, text_dim) @ self.tip_keys.T))
            out = out + self.tip_alpha * (affinity @ self.tip_values)
        if self.visual_head is not None:
            out = out + visual_part(X, text_dim) @ self.visual_head.T
        out = out / self.temperature
        if self.bias is not None:
            out = out + self.bias
        return out

    def probabilities(self, X: np.ndarray, zero_shot_matrix: np.ndarray) -> np.ndarray:
        return softmax(self.logits(X, zero_shot_matrix))

    def to_json(self) -> dict[str, Any]:
        return {
            "from_name": self.from_name, "kind": self.kind, "classes": self.classes, "layer": self.layer,
            "scale": self.scale, "class_matrix": _enc(self.class_matrix), "temperature": self.temperature,
            "bias": _enc(self.bias), "tip_alpha": self.tip_alpha, "tip_beta": self.tip_beta,
            "tip_keys": _enc(self.tip_keys), "tip_values": _enc(self.tip_values), "visual_head": _enc(self.visual_head),
            "thresholds": _enc(self.thresholds), "stats": self.stats,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> "TargetCalibration":
        return cls(
            from_name=obj["from_name"], kind=obj["kind"], classes=list(obj["classes"]), layer=obj["layer"],
            scale=float(obj["scale"]), class_matrix=_dec(obj.get("class_matrix")),
            temperature=float(obj["temperature"]), bias=_dec(obj.get("bias")),
            tip_alpha=float(obj.get("tip_alpha", 0.0)), tip_beta=float(obj.get("tip_beta", 1.0)),
            tip_keys=_dec(obj.get("tip_keys")), tip_values=_dec(obj.get("tip_values")), visual_head=_dec(obj.get("visual_head")),
            thresholds=_dec(obj.get("thresholds")), stats=dict(obj.get("stats") or {}),
        )
