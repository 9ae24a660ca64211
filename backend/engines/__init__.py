"""Zero-shot engines behind one interface, and the loader that picks one from settings."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from backend.engines.base import Engine, EngineLoadError
from backend.engines.naming import engine_short_name
from backend.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Engine", "EngineLoadError", "load_engine", "resolve_device"]


def resolve_device(setting: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if setting in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise EngineLoadError(f"LSCLIP_DEVICE={setting!r} but no CUDA device is visible; use LSCLIP_DEVICE=cpu or auto")
    return setting


def resolve_precision(setting: str, device: str) -> str:
    """``auto`` → fp16 on CUDA, fp32 on CPU (reduced precision on CPU is opt-in)."""
    if setting in ("", "auto"):
        return "fp16" if device.startswith("cuda") else "fp32"
    if setting not in ("fp32", "fp16", "bf16", "int8"):
        raise EngineLoadError(f"LSCLIP_PRECISION={setting!r} is not one of auto, fp32, fp16, bf16, int8")
    if setting == "int8" and device != "cpu":
        raise EngineLoadError("LSCLIP_PRECISION=int8 (dynamic quantization) runs on the CPU only; use fp16 on CUDA")
    return setting


def load_engine(settings: Settings) -> Engine:
    """Load the engine ``LSCLIP_MODEL`` names; fall back to the offline engine when a hub model is unreachable.

    The fallback happens only for hub ids (not local paths) and only with
    ``LSCLIP_FALLBACK_OFFLINE`` on; it is logged loudly and shows in ``/health`` and ``model_version``.
    """
    import torch

    if settings.torch_threads > 0:
        torch.set_num_threads(settings.torch_threads)
    device = resolve_device(settings.device)
    if settings.is_offline_model:
        from backend.engines.conse import ConSEEngine

        return ConSEEngine(device=device)

    from backend.engines.hf_zero_shot import HFZeroShotEngine

    precision = resolve_precision(settings.precision, device)
    is_local = Path(settings.model).expanduser().exists()
    try:
        return HFZeroShotEngine(
            str(Path(settings.model).expanduser()) if is_local else settings.model,
            device=device,
            precision=precision,
            name=engine_short_name(settings),
        )
    except EngineLoadError as exc:
        looks_like_path = settings.model.startswith(("/", ".", "~")) or os.sep in settings.model.strip("/").split("/", 1)[-1]
        if is_local or looks_like_path or not settings.fallback_offline:
            raise
        log.warning("=" * 78)
        log.warning("LSCLIP_MODEL=%s could not be loaded (no model hub reachable?): %s", settings.model, exc)
        log.warning("FALLING BACK TO THE OFFLINE ENGINE (ConSE, far less accurate than CLIP).")
        log.warning("Set LSCLIP_MODEL to a local CLIP folder, or LSCLIP_FALLBACK_OFFLINE=false to fail instead.")
        log.warning("=" * 78)
        from backend.engines.conse import ConSEEngine

        engine = ConSEEngine(device=device)
        engine.fallback_reason = f"LSCLIP_MODEL={settings.model} could not be loaded; using the offline engine"
        return engine
