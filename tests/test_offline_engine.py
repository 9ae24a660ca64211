"""The offline ConSE engine: real packaged weights, loaded with no hub, classifying real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.engines import load_engine
from backend.prompts import encode_classes
from backend.settings import DEFAULT_TEMPLATES, load_settings
from tests.conftest import shared_images


@pytest.fixture(scope="module")
def offline(cache_dir):
    import os

    os.environ.update({"LSCLIP_MODEL": "offline", "LSCLIP_CACHE_DIR": str(cache_dir)})
    try:
        from backend.settings import reset_settings

        reset_settings()
        return load_engine(load_settings())
    finally:
        del os.environ["LSCLIP_MODEL"]
        reset_settings()


def _top1(engine, folder: str, per_class: int) -> float:
    pairs = shared_images(folder, per_class=per_class)
    labels = sorted({label for _, label in pairs})
    classes = encode_classes(engine, [(label.replace("_", " "),) for label in labels], DEFAULT_TEMPLATES)
    emb = engine.encode_images([Image.open(p) for p, _ in pairs])
    predicted = engine.probabilities(engine.logits(emb, classes)).argmax(1)
    return float(np.mean([labels[i] == label for i, (_, label) in zip(predicted, pairs)]))


def test_offline_engine_is_named_loudly(offline):
    assert offline.name.startswith("offline-")
    assert offline.dim == 384


def test_in_vocabulary_photos_are_classified_far_above_chance(offline):
    # 10 Imagenette classes (ImageNet labels): chance is 10 %; measured ~93 % on the full set.
    # A wrong input scaling (e.g. torchvision mean/std) or size drops this well below the floor.
    assert _top1(offline, "imagenette-eval", per_class=4) >= 0.75


def test_zero_shot_cifar_beats_chance(offline):
    # CIFAR-10 labels are zero-shot for an ImageNet classifier: ~40 % measured, chance 10 %.
    assert _top1(offline, "cifar10-eval", per_class=6) >= 0.2


def test_the_same_engine_is_the_fallback_for_an_unreachable_hub_model(monkeypatch, cache_dir):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LSCLIP_MODEL", "openai/clip-vit-base-patch32")
    monkeypatch.setenv("LSCLIP_FALLBACK_OFFLINE", "true")
    monkeypatch.setenv("LSCLIP_CACHE_DIR", str(cache_dir))
    engine = load_engine(load_settings())
    assert engine.name.startswith("offline-")
    assert "LSCLIP_MODEL=openai/clip-vit-base-patch32" in engine.fallback_reason
