"""CPU throughput against the Hugging Face pipeline (issue 7, targets 1, 2 and 4), in one run.

    python -m bench.throughput [--images 1000] [--pipeline-images 60]

CLIP ViT-B/32 architecture with random weights (speed does not depend on weight values), 20 labels,
real JPEGs from ../shared/data (Imagenette eval + pool, upscaled ×2 to 448 px) sent as data: URIs.

1. bulk: the pipeline called per image with the candidate labels (its usual use) vs ``backend.predictor``
   end to end (decode threads, batches, cached text) in fp32, bf16 and dynamic int8, with top-1
   agreement and embedding cosine against fp32;
2. re-scoring 10,000 cached image embeddings (a calibration change) vs re-encoding them;
4. decode + preprocess alone, per core, with and without JPEG draft decoding.
Writes the "throughput" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.doc import stamp, write_section
from bench.images import LABELS, data_uri, upscaled_jpegs

ROOT = Path(__file__).resolve().parents[1]
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--pipeline-images", type=int, default=60)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import pipeline

    from backend.engines.hf_zero_shot import HFZeroShotEngine
    from backend.engines.random_clip import build_random_clip
    from backend.images.decode import decode_image
    from backend.images.fetch import FetchContext
    from backend.images.url_policy import UrlPolicy
    from backend.labelconfig.targets import ClassSpec, Target
    from backend.predictor import PredictOptions, predict
    from backend.prompts import class_embeddings
    from backend.settings import DEFAULT_TEMPLATES

    threads = torch.get_num_threads()
    model_dir = build_random_clip(Path(tempfile.mkdtemp()) / "clip-b32", size="b32")
    jpegs = upscaled_jpegs(Path(args.data), args.images)
    tasks = [{"id": i, "data": {"image": data_uri(b)}} for i, b in enumerate(jpegs)]
    target = Target("label", "image", "image", "single", tuple(ClassSpec(v, (v,)) for v in LABELS))
    ctx = FetchContext(hostname="", token="", timeout_s=10, max_bytes=50_000_000, policy=UrlPolicy([], ()))
    rows: list[str] = []

    # 1. the pipeline, per image
    pipe = pipeline("zero-shot-image-classification", model=str(model_dir), device=-1)
    sample = [Image.open(io.BytesIO(b)) for b in jpegs[: args.pipeline_images]]
    pipe(sample[0], candidate_labels=LABELS)
    started = time.perf_counter()
    for image in sample:
        pipe(image, candidate_labels=LABELS)
    pipe_rate = len(sample) / (time.perf_counter() - started)
    del pipe
    rows.append(f"| 1 | HF pipeline per image, fp32 ({len(sample)} images) | {pipe_rate:.2f} img/s | 1.0× | — |")

    labels_by_mode, emb_by_mode, fp32_rate = {}, {}, 0.0
    for precision in ("fp32", "bf16", "int8"):
        engine = HFZeroShotEngine(str(model_dir), device="cpu", precision=precision, name=f"b32-{precision}")
        options = PredictOptions(templates=DEFAULT_TEMPLATES, multi_threshold=0.3, batch_size=32, decode_workers=2)
        class_embeddings(engine, target.label_texts, DEFAULT_TEMPLATES)  # text is encoded once per label set
        predict(engine, [target], tasks[:8], ctx, options, "bench")  # warm-up
        started = time.perf_counter()
        predictions, stats = predict(engine, [target], tasks, ctx, options, "bench")
        rate = len(tasks) / (time.perf_counter() - started)
        assert not stats.errors
        labels_by_mode[precision] = [p["result"][0]["value"]["choices"][0] for p in predictions]
        pixels = np.stack([engine.preprocess(decode_image(b, 80_000_000)) for b in jpegs[:64]])
        emb_by_mode[precision] = engine.encode_pixels(pixels)
        if precision == "fp32":
            fp32_rate = rate
            agreement, cosine = "—", "—"
        else:
            agreement = f"{np.mean([a == b for a, b in zip(labels_by_mode['fp32'], labels_by_mode[precision])]) * 100:.1f} %"
            cosine = f"{float(np.min(np.sum(emb_by_mode['fp32'] * emb_by_mode[precision], axis=1))):.4f}"
        rows.append(f"| 1 | ours end to end, {precision}, batch 32, 2 decode threads ({len(tasks)} images) | "
                    f"{rate:.2f} img/s | {rate / pipe_rate:.1f}× | top-1 agreement with fp32 {agreement}; min cosine {cosine} |")
        if precision == "fp32":
            fp32_engine = engine

    # 2. re-scoring cached embeddings after a calibration change vs re-encoding them
    rng = np.random.default_rng(0)
    cached = rng.normal(size=(10_000, fp32_engine.dim)).astype(np.float32)
    cached /= np.linalg.norm(cached, axis=1, keepdims=True)
    classes = class_embeddings(fp32_engine, target.label_texts, DEFAULT_TEMPLATES)
    started = time.perf_counter()
    for _ in range(5):
        fp32_engine.probabilities(fp32_engine.logits(cached, classes)).argmax(1)
    rescore_rate = 5 * len(cached) / (time.perf_counter() - started)
    rows.append(f"| 2 | re-score 10,000 cached embeddings (matrix product + softmax) | {rescore_rate:,.0f} img/s | "
                f"{rescore_rate / fp32_rate:,.0f}× re-encoding (fp32 end to end) | — |")

    # 4. decode + preprocess alone, one thread
    for draft in (False, True):
        started = time.perf_counter()
        out = [fp32_engine.preprocess(decode_image(b, 80_000_000, draft_to=(224, 224) if draft else None)) for b in jpegs[:200]]
        rate = len(out) / (time.perf_counter() - started)
        if not draft:
            reference = out
            note = "reference"
        else:
            note = f"max |Δ| after normalisation {max(float(np.abs(a - b).max()) for a, b in zip(reference, out)):.3f}"
        rows.append(f"| 4 | decode + preprocess, 1 thread, 448 px JPEG{', draft' if draft else ''} | {rate:.1f} img/s per core | — | {note} |")

    body = "\n".join([
        "## CPU throughput (issue 7, targets 1, 2, 4)",
        "",
        stamp(os.environ.get("LSCLIP_BENCH_COMMAND", "python -m bench.throughput")),
        f"ViT-B/32 architecture, random weights, {len(LABELS)} labels, {len(tasks)} real JPEGs (Imagenette, upscaled to 448 px) "
        f"as data: URIs; torch threads {threads}. All rows from one run on this shared 2-core machine.",
        "",
        "| target | what | rate | ratio | accuracy check |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "Agreement is measured on a random-weight model, whose class scores are nearly tied, so it is a",
        "harsh check; the cosine between fp32 and reduced-precision image embeddings is the tolerance statement.",
    ])
    write_section("throughput", body)
    print(body)


if __name__ == "__main__":
    main()
