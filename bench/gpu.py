"""GPU throughput: this engine (cuda fp16, batched, decode threads) against the Hugging Face pipeline on the same GPU.

    bash bench/gpu.sh            # on a machine with an NVIDIA GPU; prints a Markdown table

CLIP ViT-B/32 architecture with random weights (speed does not depend on weight values; nothing
is downloaded). Images: real JPEGs carried in ``.gpu-carry/images`` (``bench/gpu.sh`` explains),
repeated and upscaled to ``--images`` tasks, 20 labels.

Rows: (1) the pipeline called per image with the candidate labels, its usual use; (2) the bare
model, preprocessed batches of 32-512 in fp16; (3) end to end through ``backend.predictor``
(data: URI → decode → preprocess → encode → score) with decode threads, as a worker runs it.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.images import LABELS

def _images(folder: Path, count: int) -> list[bytes]:
    sources = sorted(folder.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no JPEGs in {folder}: see bench/gpu.sh")
    out = []
    for i in range(count):
        image = Image.open(sources[i % len(sources)]).convert("RGB")
        scale = 2 + (i // len(sources)) % 3  # upscaled copies: 448-896 px, like real photos
        image = image.resize((image.width * scale, image.height * scale), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--pipeline-images", type=int, default=300)
    parser.add_argument("--device", default="cuda", help="cpu: a quick dry run of the script itself")
    parser.add_argument("--carry", default=str(Path(__file__).resolve().parents[1] / ".gpu-carry"))
    args = parser.parse_args()
    import torch
    from transformers import pipeline

    from backend.engines.hf_zero_shot import HFZeroShotEngine
    from backend.engines.random_clip import build_random_clip
    from backend.images.fetch import FetchContext
    from backend.images.url_policy import UrlPolicy
    from backend.labelconfig.targets import ClassSpec, Target
    from backend.predictor import PredictOptions, predict

    model_dir = build_random_clip(Path(tempfile.mkdtemp()) / "clip-b32", size="b32")
    jpegs = _images(Path(args.carry) / "images", args.images)
    rows = []
    cuda = args.device == "cuda"
    gpu = torch.cuda.get_device_name(0) if cuda else "CPU (dry run)"
    dtype = torch.float16 if cuda else torch.float32

    # (1) the Hugging Face pipeline, per image, fp16 on the same GPU
    device = 0 if cuda else -1
    try:
        pipe = pipeline("zero-shot-image-classification", model=str(model_dir), device=device, dtype=dtype)
    except TypeError:  # transformers 4.x
        pipe = pipeline("zero-shot-image-classification", model=str(model_dir), device=device, torch_dtype=dtype)
    pil = [Image.open(io.BytesIO(b)) for b in jpegs[: args.pipeline_images]]
    for image in pil[:10]:
        pipe(image, candidate_labels=LABELS)
    _sync()
    started = time.perf_counter()
    for image in pil:
        pipe(image, candidate_labels=LABELS)
    _sync()
    pipe_rate = len(pil) / (time.perf_counter() - started)
    rows.append(("HF pipeline, per image (decode + preprocess + text + image encode)", "1", pipe_rate, 1.0))
    del pipe

    # (2) the bare model: preprocessed batches, fp16
    engine = HFZeroShotEngine(str(model_dir), device=args.device, precision="fp16" if cuda else "fp32",
                              name="clip-b32-random")
    pixels = np.stack([engine.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in jpegs[:512]])
    for batch in (32, 64, 128, 256, 512) if cuda else (8,):
        chunk = pixels[:batch]
        engine.encode_pixels(chunk)
        _sync()
        reps = max(2, 1024 // batch)
        started = time.perf_counter()
        for _ in range(reps):
            engine.encode_pixels(chunk)
        _sync()
        rate = reps * batch / (time.perf_counter() - started)
        rows.append(("model only, fp16, preprocessed batch (incl. host→device copy)", str(batch), rate, rate / pipe_rate))

    # (3) end to end as a worker runs a batch: data: URIs → decode threads → batched fp16 encode → scores
    target = Target("label", "image", "image", "single", tuple(ClassSpec(v, (v,)) for v in LABELS))
    tasks = [{"id": i, "data": {"image": "data:image/jpeg;base64," + base64.b64encode(b).decode()}}
             for i, b in enumerate(jpegs)]
    ctx = FetchContext(hostname="", token="", timeout_s=10, max_bytes=50_000_000, policy=UrlPolicy([], ()))
    from backend.settings import DEFAULT_TEMPLATES

    for workers, batch, draft in ((8, 256, False), (14, 256, False), (14, 256, True)) if cuda else ((2, 8, False),):
        options = PredictOptions(templates=DEFAULT_TEMPLATES, multi_threshold=0.3, batch_size=batch,
                                 decode_workers=workers, jpeg_draft=draft)
        predict(engine, [target], tasks[:64], ctx, options, "bench")  # warm-up (text matrix cached after)
        _sync()
        started = time.perf_counter()
        predictions, stats = predict(engine, [target], tasks, ctx, options, "bench")
        _sync()
        rate = len(tasks) / (time.perf_counter() - started)
        assert len(predictions) == len(tasks) and not stats.errors
        rows.append((f"end to end, {workers} decode threads{', JPEG draft' if draft else ''}", str(batch), rate,
                     rate / pipe_rate))

    print(f"\nGPU: {gpu}; torch {torch.__version__}; {os.cpu_count()} CPU cores; Python {platform.python_version()}; "
          f"{len(jpegs)} JPEGs (448-896 px), {len(LABELS)} labels, ViT-B/32 architecture, random weights\n")
    print("| method | batch | images/s | × pipeline |")
    print("|---|---|---|---|")
    for name, batch, rate, ratio in rows:
        print(f"| {name} | {batch} | {rate:.1f} | {ratio:.1f}× |")


if __name__ == "__main__":
    main()
