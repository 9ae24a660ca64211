"""The running service on CPU (issue 7, targets 3, 5, 6): latency, memory, text encoding, worker scaling.

    python -m bench.service [--requests 200]

Starts a private redis-server, ``lsclip worker`` and ``lsclip api`` (gunicorn) with a ViT-B/32-architecture CLIP
(random weights) and measures, in one run:

3. one task through HTTP → RQ → worker → reply, p50/p95 over distinct real JPEGs, against the bare model call
   (decode + preprocess + encode + score in-process) measured first in this process;
5. peak RSS (VmHWM) of the api's gunicorn worker and of the worker after the latency run;
6. text encoding of 1,000 labels × the template set, then the same label set again (cached); bulk throughput of
   1 worker (2 torch threads) vs 2 workers (1 thread each) draining the same predict jobs.
Writes the "service" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

from bench.doc import stamp, write_section
from bench.images import LABELS, data_uri, upscaled_jpegs
from bench.stack import free_port, service_env, start_redis, wait_for

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ('<View><Image name="image" value="$image"/><Choices name="label" toName="image">'
          + "".join(f'<Choice value="{v}"/>' for v in LABELS) + "</Choices></View>")


def _hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--bulk-images", type=int, default=192)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from backend.engines.hf_zero_shot import HFZeroShotEngine
    from backend.engines.random_clip import build_random_clip
    from backend.images.decode import decode_image
    from backend.images.fetch import FetchContext, fetch_bytes
    from backend.images.url_policy import UrlPolicy
    from backend.prompts import encode_classes, prompts_for
    from backend.settings import DEFAULT_TEMPLATES

    work = Path(tempfile.mkdtemp(prefix="lsclip-bench-"))
    model_dir = build_random_clip(work / "clip-b32", size="b32")
    uris = [data_uri(b) for b in upscaled_jpegs(Path(args.data), args.requests + 10 + args.bulk_images * 2)]
    rows: list[str] = []

    # bare model call, in this process, before any service runs
    engine = HFZeroShotEngine(str(model_dir), device="cpu", precision="fp32", name="b32")
    ctx = FetchContext(hostname="", token="", timeout_s=10, max_bytes=50_000_000, policy=UrlPolicy([], ()))
    classes = encode_classes(engine, [(v,) for v in LABELS], DEFAULT_TEMPLATES)
    bare = []
    for uri in uris[:30]:
        started = time.perf_counter()
        pixels = engine.preprocess(decode_image(fetch_bytes(uri, ctx), 80_000_000))
        engine.probabilities(engine.logits(engine.encode_pixels(pixels[None]), classes))
        bare.append(time.perf_counter() - started)
    bare_ms = float(np.median(bare[5:])) * 1000

    # 6a. text encoding for 1,000 labels x the template set, then cached
    labels = [f"label {i}" for i in range(1000)]
    started = time.perf_counter()
    encode_classes(engine, [(l,) for l in labels], DEFAULT_TEMPLATES)
    text_s = time.perf_counter() - started
    prompts = len(prompts_for(["x"], DEFAULT_TEMPLATES)) * len(labels)
    from backend.prompts import class_embeddings

    class_embeddings(engine, [(l,) for l in labels], DEFAULT_TEMPLATES)
    started = time.perf_counter()
    class_embeddings(engine, [(l,) for l in labels], DEFAULT_TEMPLATES)
    cached_ms = (time.perf_counter() - started) * 1000
    del engine

    api_port = free_port()
    procs: list[subprocess.Popen] = []
    redis_proc, url, conn = start_redis(work)
    env = service_env(url, model_dir)

    def start_worker(threads: int) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env={**env, "LSCLIP_TORCH_THREADS": str(threads)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        return p

    try:
        worker = start_worker(2)
        api = subprocess.Popen([sys.executable, "-m", "backend.cli", "api", "--port", str(api_port), "--processes", "1",
                                "--threads", "4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(api)
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: requests.get(base + "/health", timeout=1).status_code == 200, 120, "the service")

        # 3. interactive latency, one distinct image per request
        def one(uri: str, i: int) -> float:
            started = time.perf_counter()
            reply = requests.post(base + "/predict", timeout=100, json={
                "tasks": [{"id": i, "data": {"image": uri}}], "project": "1.1", "label_config": CONFIG})
            assert reply.status_code == 200 and reply.json()["results"][0]["result"]
            return time.perf_counter() - started

        for i, uri in enumerate(uris[:10]):
            one(uri, i)
        latencies = np.array([one(uri, 100 + i) for i, uri in enumerate(uris[10 : 10 + args.requests])]) * 1000
        p50, p95 = np.percentile(latencies, [50, 95])
        rows.append(f"| 3 | one task HTTP → RQ → worker → reply ({args.requests} requests, distinct JPEGs) | "
                    f"p50 {p50:.0f} ms, p95 {p95:.0f} ms | bare model call {bare_ms:.0f} ms: overhead {p50 - bare_ms:.0f} ms at p50 |")

        # 5. peak memory
        import psutil

        gunicorn_children = psutil.Process(api.pid).children()
        api_mb = max(_hwm_mb(c.pid) for c in gunicorn_children) if gunicorn_children else _hwm_mb(api.pid)
        rows.append(f"| 5 | peak RSS (VmHWM): api gunicorn worker {api_mb:.0f} MB (no torch), worker {_hwm_mb(worker.pid):.0f} MB | — | — |")
        rows.append(f"| 6 | text encoding, 1,000 labels × {len(DEFAULT_TEMPLATES)} templates ({prompts} prompts), fp32 | "
                    f"{text_s:.1f} s ({prompts / text_s:.0f} prompts/s) | same label set again (cached): {cached_ms:.1f} ms |")

        # 6b. bulk: 1 worker (2 threads) vs 2 workers (1 thread each), same number of images, cache cleared
        from rq import Queue

        queue = Queue("lsclip-bulk", connection=conn)

        def drain(images: list[str]) -> float:
            for key in conn.scan_iter(match="lsclip:cache:img:*"):
                conn.delete(key)
            started = time.perf_counter()
            jobs = [queue.enqueue("backend.jobs.predict.predict_job", "2", CONFIG,
                                  [{"id": j, "data": {"image": u}} for j, u in enumerate(images[k : k + 16])])
                    for k in range(0, len(images), 16)]
            wait_for(lambda: all(j.get_status(refresh=True) in ("finished", "failed") for j in jobs), 900, "bulk jobs")
            rate = len(images) / (time.perf_counter() - started)
            failed = [j.id for j in jobs if j.get_status() == "failed"]
            if failed:
                raise SystemExit(f"bulk jobs failed: {failed}")
            return rate

        bulk = uris[10 + args.requests :]
        one_rate = drain(bulk[: args.bulk_images])
        worker.terminate()
        worker.wait(30)
        workers = [start_worker(1), start_worker(1)]
        from rq import Worker

        wait_for(lambda: Worker.count(connection=conn) >= 2 and conn.hget("lsclip:engine", "name"), 120, "two workers")
        two_rate = drain(bulk[args.bulk_images : 2 * args.bulk_images])
        rows.append(f"| 6 | bulk predict jobs (16 images each): 1 worker × 2 threads vs 2 workers × 1 thread | "
                    f"{one_rate:.1f} vs {two_rate:.1f} img/s | {two_rate / one_rate:.2f}× |")
        del workers
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        redis_proc.terminate()
        redis_proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)

    body = "\n".join([
        "## The running service on CPU (issue 7, targets 3, 5, 6)",
        "",
        stamp(os.environ.get("LSCLIP_BENCH_COMMAND", "python -m bench.service")),
        "ViT-B/32 architecture, random weights, fp32, 20 labels; private redis-server, `lsclip worker`, `lsclip api`",
        "(gunicorn, 1 process × 4 threads) on this shared 2-core machine, all in one run.",
        "",
        "| target | what | measured | against |",
        "|---|---|---|---|",
        *rows,
    ])
    write_section("service", body)
    print(body)


if __name__ == "__main__":
    main()
