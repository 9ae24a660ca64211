"""Any transformers zero-shot image classification model (CLIP, SigLIP, AltCLIP...).

Loaded with ``from_pretrained`` from a hub id or a local path. Preprocessing is done
here with PIL and numpy from the model's own image-processor settings (the same
arithmetic as the PIL image processors, thread-safe, and no torch), so decoding can run
in parallel threads while the model encodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from backend.engines.base import Engine, EngineLoadError, l2_normalise

log = logging.getLogger(__name__)

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _features(output) -> "torch.Tensor":  # noqa: F821
    """transformers 5 returns an output object (embeddings in ``pooler_output``); 4.x a tensor."""
    if hasattr(output, "pooler_output") and output.pooler_output is not None:
        return output.pooler_output
    return output


def _size_pair(size) -> tuple[int | None, int | None, int | None]:
    get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
    return get("shortest_edge", None), get("height", None), get("width", None)


class HFZeroShotEngine(Engine):
    """A transformers dual encoder with its own score function."""

    def __init__(self, model_id: str, device: str = "cpu", precision: str = "fp32", name: str = "") -> None:
        import torch
        from transformers import AutoModel, AutoProcessor

        started = time.perf_counter()
        try:
            self.model = AutoModel.from_pretrained(model_id)
            processor = AutoProcessor.from_pretrained(model_id)
        except Exception as exc:
            raise EngineLoadError(f"LSCLIP_MODEL={model_id!r} could not be loaded: {exc}") from exc
        if not (hasattr(self.model, "get_image_features") and hasattr(self.model, "get_text_features")):
            raise EngineLoadError(
                f"LSCLIP_MODEL={model_id!r} is a {type(self.model).__name__}, not a dual image/text encoder "
                "(zero-shot image classification needs CLIP, SigLIP or similar)"
            )
        self.torch = torch
        self.model_id = model_id
        self.name = name or model_id
        self.device = device
        self.precision = precision
        self.tokenizer = processor.tokenizer
        self._read_image_settings(processor.image_processor)
        self._pad_to_max = "siglip" in type(self.model).__name__.lower()
        if hasattr(self.model, "logit_bias") and self.model.logit_bias is not None:
            self.score_kind = "sigmoid"
            self.logit_bias = float(self.model.logit_bias.detach().float().reshape(-1)[0])
        self.logit_scale = float(self.model.logit_scale.detach().float().exp().reshape(-1)[0])
        dtype = getattr(torch, _DTYPES.get(precision, "float32"))
        self.model = self.model.to(device=device, dtype=dtype).eval()
        if precision == "int8":  # dynamic int8 quantization of the Linear layers (CPU only)
            from torch.ao.quantization import quantize_dynamic

            self.model = quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self._dtype = dtype
        self._dim = int(getattr(self.model.config, "projection_dim", 0) or self._probe_dim())
        log.info("loaded %s on %s (%s) in %.1f s", model_id, device, precision, time.perf_counter() - started)

    # -- image side ---------------------------------------------------------
    def _read_image_settings(self, ip) -> None:
        shortest, height, width = _size_pair(ip.size)
        self._shortest_edge = shortest
        self._resize_hw = (height, width) if height and width else None
        crop = getattr(ip, "crop_size", None)
        self._do_crop = bool(getattr(ip, "do_center_crop", False)) and crop is not None
        if self._do_crop:
            _, ch, cw = _size_pair(crop)
            self._crop_hw = (ch, cw)
        else:
            self._crop_hw = self._resize_hw or (shortest, shortest)
        self._resample = int(getattr(ip, "resample", Image.BICUBIC) or Image.BICUBIC)
        self._rescale = float(getattr(ip, "rescale_factor", 1 / 255))
        self._mean = np.asarray(ip.image_mean, np.float32).reshape(3, 1, 1)
        self._std = np.asarray(ip.image_std, np.float32).reshape(3, 1, 1)

    @property
    def input_size(self) -> tuple[int, int]:
        return self._crop_hw

    def preprocess(self, image: Image.Image) -> np.ndarray:
        image = image.convert("RGB") if image.mode != "RGB" else image
        if self._shortest_edge:
            w, h = image.size
            short, long = (w, h) if w <= h else (h, w)
            new_short = self._shortest_edge
            new_long = int(new_short * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
            image = image.resize(size, self._resample)
        elif self._resize_hw:
            image = image.resize((self._resize_hw[1], self._resize_hw[0]), self._resample)
        if self._do_crop:
            ch, cw = self._crop_hw
            w, h = image.size
            top, left = (h - ch) // 2, (w - cw) // 2
            image = image.crop((left, top, left + cw, top + ch))
        arr = np.asarray(image, dtype=np.float32).transpose(2, 0, 1) * self._rescale
        return (arr - self._mean) / self._std

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device, dtype=self._dtype)
            feats = _features(self.model.get_image_features(pixel_values=batch))
            return l2_normalise(feats.float().cpu().numpy())

    # -- text side ----------------------------------------------------------
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        torch = self.torch
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start : start + batch_size])
                padding = "max_length" if self._pad_to_max else True
                enc = self.tokenizer(chunk, padding=padding, truncation=True, return_tensors="pt")
                enc = {k: v.to(self.device) for k, v in enc.items()}
                feats = _features(self.model.get_text_features(**enc))
                out.append(l2_normalise(feats.float().cpu().numpy()))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        return self._dim

    def _probe_dim(self) -> int:
        return int(self.encode_texts(["a"]).shape[1])
