"""Engines: loading through from_pretrained offline, preprocessing, prompt ensembling, text caching, fallback."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.engines import EngineLoadError, load_engine
from backend.engines.base import Engine, softmax
from backend.prompts import class_embeddings, encode_classes
from backend.settings import load_settings
from tests.conftest import shared_images


@pytest.fixture(scope="module")
def engine(tiny_clip):
    import os

    os.environ["LSCLIP_MODEL"] = str(tiny_clip)
    try:
        return load_engine(load_settings())
    finally:
        del os.environ["LSCLIP_MODEL"]


def test_tiny_clip_loads_from_a_local_path_like_a_hub_model(engine, tiny_clip):
    assert engine.name == "tiny-clip"
    assert engine.score_kind == "softmax" and engine.logit_scale > 1
    images = [Image.open(p) for p, _ in shared_images(per_class=1)[:3]]
    emb = engine.encode_images(images, batch_size=2)
    assert emb.shape == (3, engine.dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_preprocessing_matches_the_models_own_image_processor(engine, tiny_clip):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_clip)
    for path, _ in shared_images("imagenette-eval", per_class=1)[:3]:
        image = Image.open(path).convert("RGB")
        ours = engine.preprocess(image)
        theirs = processor.image_processor(image, return_tensors="np")["pixel_values"][0]
        assert np.abs(ours - theirs).max() < 1e-4


def test_prompt_ensemble_is_the_normalised_mean_over_templates_and_synonyms(engine):
    templates = ("a photo of a {}.", "art of the {}.")
    matrix = encode_classes(engine, [("dog", "puppy"), ("cat",)], templates)
    prompts = [t.format(s) for s in ("dog", "puppy") for t in templates]
    manual = engine.encode_texts(prompts).mean(0)
    manual /= np.linalg.norm(manual)
    assert np.allclose(matrix[0], manual, atol=1e-5)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)


def test_class_matrices_are_encoded_once_then_cached(engine, redis_server, monkeypatch):
    import redis

    from backend import prompts

    calls = []
    original = engine.encode_texts
    monkeypatch.setattr(engine, "encode_texts", lambda texts, **kw: calls.append(len(texts)) or original(texts))
    cache = redis.Redis.from_url(redis_server.url)
    labels = [("zebra-x",), ("yak-y",)]
    first = class_embeddings(engine, labels, ("a {}.",), cache)
    second = class_embeddings(engine, labels, ("a {}.",), cache)
    assert len(calls) == 1 and second is first
    prompts._MEMORY.clear()  # a fresh process: served from Redis, not re-encoded
    third = class_embeddings(engine, labels, ("a {}.",), cache)
    assert len(calls) == 1 and np.allclose(third, first)


def test_sigmoid_models_score_with_their_bias():
    class Sig(Engine):
        score_kind = "sigmoid"
        logit_scale, logit_bias = 10.0, -5.0
        dim = 2

        def preprocess(self, image):  # pragma: no cover - not used
            raise NotImplementedError

        def encode_pixels(self, pixels):  # pragma: no cover
            raise NotImplementedError

        def encode_texts(self, texts):  # pragma: no cover
            raise NotImplementedError

    sig = Sig()
    logits = sig.logits(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert np.allclose(logits, [[5.0, -5.0]])
    assert np.allclose(sig.probabilities(logits), 1 / (1 + np.exp(-logits)))
    assert np.allclose(softmax(np.array([[0.0, 0.0]])), [[0.5, 0.5]])


def test_a_bad_local_model_path_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("LSCLIP_MODEL", str(tmp_path / "no-such-model"))
    (tmp_path / "no-such-model").mkdir()
    with pytest.raises(EngineLoadError, match="LSCLIP_MODEL="):
        load_engine(load_settings())


def test_unreachable_hub_model_fails_when_fallback_is_off(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LSCLIP_MODEL", "openai/clip-vit-base-patch32")
    monkeypatch.setenv("LSCLIP_FALLBACK_OFFLINE", "false")
    with pytest.raises(EngineLoadError, match="LSCLIP_MODEL='openai/clip-vit-base-patch32'"):
        load_engine(load_settings())


def test_int8_precision_quantizes_and_stays_close_to_fp32(tiny_clip, monkeypatch):
    from backend.engines import resolve_precision

    monkeypatch.setenv("LSCLIP_MODEL", str(tiny_clip))
    monkeypatch.setenv("LSCLIP_PRECISION", "int8")
    int8 = load_engine(load_settings())
    monkeypatch.setenv("LSCLIP_PRECISION", "fp32")
    fp32 = load_engine(load_settings())
    images = [Image.open(p) for p, _ in shared_images(per_class=1)[:4]]
    a, b = fp32.encode_images(images), int8.encode_images(images)
    assert any("Quantized" in type(m).__name__ or "quantized" in type(m).__module__ for m in int8.model.modules())
    assert np.min(np.sum(a * b, axis=1)) > 0.9
    with pytest.raises(EngineLoadError, match="CPU only"):
        resolve_precision("int8", "cuda")
