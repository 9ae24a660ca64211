"""The engine interface every zero-shot model implements.

An engine turns images and texts into L2-normalised embeddings in one space and knows
its own score function (CLIP: softmax over ``logit_scale * cos``; SigLIP: sigmoid with bias).
Engines are only ever imported by workers, never by the API process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from PIL import Image


class EngineLoadError(RuntimeError):
    """The configured model cannot be loaded; the message names the setting to change."""


class Engine(ABC):
    """A zero-shot image classifier split into its image side and its text side."""

    #: short name used in ``model_version`` (``<name>@r<revision>``)
    name: str = "engine"
    #: what was loaded (hub id, local path, or a package name)
    model_id: str = ""
    #: "softmax" (CLIP-style, mutually exclusive classes) or "sigmoid" (SigLIP-style)
    score_kind: str = "softmax"
    logit_scale: float = 100.0
    logit_bias: float = 0.0
    #: set when this engine replaces one that failed to load
    fallback_reason: str = ""
    device: str = "cpu"
    precision: str = "fp32"

    @abstractmethod
    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One RGB image → the model's input array (C, H, W), float32. Thread-safe, no torch."""

    @abstractmethod
    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """A batch of preprocessed images (N, C, H, W) → (N, d) L2-normalised embeddings."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts → (M, d) L2-normalised embeddings."""

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Images → (N, d) L2-normalised embeddings, encoded in batches of ``batch_size``."""
        out = []
        for start in range(0, len(images), batch_size):
            chunk = np.stack([self.preprocess(im) for im in images[start : start + batch_size]])
            out.append(self.encode_pixels(chunk))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model reads; used to let the JPEG decoder scale down early."""
        return (224, 224)

    @property
    @abstractmethod
    def dim(self) -> int:
        """Embedding width."""

    @property
    def image_dim(self) -> int:
        """Width of an image embedding: ``dim`` text-aligned dimensions, then any visual-only ones."""
        return self.dim

    def logits(self, image_embeddings: np.ndarray, class_embeddings: np.ndarray) -> np.ndarray:
        """Raw class logits (N, K) from normalised embeddings, with the model's own scale and bias."""
        return self.logit_scale * (semantic_part(image_embeddings, class_embeddings.shape[1]) @ class_embeddings.T) \
            + self.logit_bias

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """The model's own score function applied to ``logits`` (rows are images)."""
        if self.score_kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-logits))
        return softmax(logits)

    def describe(self) -> dict[str, str]:
        """What /health and the logs say about this engine."""
        return {
            "name": self.name,
            "model": self.model_id,
            "device": self.device,
            "precision": self.precision,
            "score": self.score_kind,
            "fallback_reason": self.fallback_reason,
        }


def semantic_part(image_embeddings: np.ndarray, text_dim: int) -> np.ndarray:
    """The text-aligned dimensions of image embeddings (all of them for CLIP-style engines)."""
    return image_embeddings[:, :text_dim]


def visual_part(image_embeddings: np.ndarray, text_dim: int) -> np.ndarray:
    """The visual-only dimensions when an engine appends them (the offline engine), else everything."""
    return image_embeddings[:, text_dim:] if image_embeddings.shape[1] > text_dim else image_embeddings


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)
