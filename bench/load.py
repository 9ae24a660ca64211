"""Loopback load test (issue 8): concurrent interactive /predict while bulk jobs run, on one worker.

    python -m bench.load [--clients 4] [--requests 30] [--chunk 32]

Starts a private redis-server, one ``lsclip worker`` (ViT-B/32 architecture, random weights: time does
not depend on the values) and ``lsclip api`` (gunicorn), then runs two phases with the same interactive
load — ``--clients`` threads each sending ``--requests`` one-image /predict calls, every image distinct:

1. interactive alone;
2. interactive while bulk-queue jobs of ``--chunk`` distinct images keep the worker busy (4 chunks in
   flight, as ``lsclip preannotate`` keeps them; the job is the pre-annotation compute without the Label
   Studio write).

Reports throughput, p50/p95/p99 latency and errors per phase, bulk images/s, and the worker's and api's
resident memory sampled through the run. Interactive work has the higher-priority queue, so during bulk
work an interactive request waits at most for the chunk being computed. Writes the "load" section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import requests

from bench.doc import stamp, write_section
from bench.images import LABELS, data_uri, upscaled_jpegs
from bench.service import CONFIG
from bench.stack import free_port, service_env, start_redis, wait_for

ROOT = Path(__file__).resolve().parents[1]


def _phase(base: str, uris: list[str], clients: int) -> dict:
    """Send one /predict per URI from ``clients`` threads; latency and errors."""
    latencies, errors = [], []
    lock = threading.Lock()

    def one(i: int, uri: str) -> None:
        started = time.perf_counter()
        try:
            reply = requests.post(base + "/predict", timeout=100, json={
                "tasks": [{"id": i, "data": {"image": uri}}], "project": "1.1", "label_config": CONFIG})
            ok = reply.status_code == 200 and reply.json()["results"][0]["result"]
            problem = None if ok else f"HTTP {reply.status_code}: {reply.text[:120]}"
        except requests.RequestException as exc:
            problem = repr(exc)
        with lock:
            latencies.append(time.perf_counter() - started)
            if problem:
                errors.append(problem)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda item: one(*item), enumerate(uris)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"n": len(uris), "wall_s": wall, "rps": len(uris) / wall, "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99)), "max": float(ms.max()),
            "errors": errors}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=30, help="per client and phase")
    parser.add_argument("--chunk", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rq import Queue

    from backend.engines.random_clip import build_random_clip

    work = Path(tempfile.mkdtemp(prefix="lsclip-load-"))
    model_dir = build_random_clip(work / "clip-b32", size="b32")
    per_phase = args.clients * args.requests
    uris = [data_uri(b) for b in upscaled_jpegs(Path(args.data), 1000)]
    alone_uris, busy_uris, bulk_uris = uris[:per_phase], uris[per_phase:2 * per_phase], uris[2 * per_phase:]

    api_port = free_port()
    redis_proc, url, conn = start_redis(work)
    env = service_env(url, model_dir)
    worker = subprocess.Popen([sys.executable, "-m", "backend.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = subprocess.Popen([sys.executable, "-m", "backend.cli", "api", "--port", str(api_port), "--processes", "1",
                            "--threads", "16"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    memory: list[tuple[float, float, float]] = []  # (t, worker MB, api MB)
    sampling = threading.Event()

    def rss(proc: subprocess.Popen) -> float:
        p = psutil.Process(proc.pid)
        return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20

    def sample() -> None:
        t0 = time.monotonic()
        while not sampling.wait(1.0):
            memory.append((time.monotonic() - t0, rss(worker), rss(api)))

    try:
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: requests.get(base + "/health", timeout=1).status_code == 200, 180, "the service")
        _phase(base, uris[-8:], 2)  # warm-up: text embeddings, first forward passes
        threading.Thread(target=sample, daemon=True).start()
        alone = _phase(base, alone_uris, args.clients)

        bulk = Queue("lsclip-bulk", connection=conn)
        chunks = [bulk_uris[i:i + args.chunk] for i in range(0, len(bulk_uris), args.chunk)]
        jobs, stop = [], threading.Event()

        def feed() -> None:  # keep 4 chunks queued or running, like `lsclip preannotate`
            nxt = 0
            while not stop.is_set() and nxt < len(chunks):
                if sum(1 for j in jobs if j.get_status() in ("queued", "started")) < 4:
                    tasks = [{"id": 10_000 + nxt * args.chunk + k, "data": {"image": u}} for k, u in enumerate(chunks[nxt])]
                    jobs.append(bulk.enqueue_call("backend.jobs.predict.predict_job", args=("2", CONFIG, tasks),
                                                  timeout=600, result_ttl=600))
                    nxt += 1
                time.sleep(0.05)

        feeder = threading.Thread(target=feed, daemon=True)
        bulk_started = time.perf_counter()
        feeder.start()
        time.sleep(1.0)  # bulk work is running before the interactive load starts
        busy = _phase(base, busy_uris, args.clients)
        stop.set()
        feeder.join()
        for job in jobs:
            if job.get_status() == "queued":
                job.cancel()
        wait_for(lambda: all(j.get_status() in ("finished", "canceled", "failed") for j in jobs), 600, "bulk jobs")
        bulk_wall = time.perf_counter() - bulk_started
        done = [j for j in jobs if j.get_status() == "finished"]
        bulk_images = sum(len(j.return_value()["results"]) for j in done)
        bulk_failed = sum(1 for j in jobs if j.get_status() == "failed")
        sampling.set()
    finally:
        for proc in (api, worker):
            proc.terminate()
        for proc in (api, worker):
            proc.wait(30)
        redis_proc.terminate()
        shutil.rmtree(work, ignore_errors=True)

    def row(name: str, r: dict) -> str:
        return (f"| {name} | {r['n']} | {r['rps']:.1f} | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | "
                f"{r['max']:.0f} | {len(r['errors'])} |")

    worker_mb = [m[1] for m in memory]
    api_mb = [m[2] for m in memory]
    third = max(1, len(worker_mb) // 3)
    ratio = busy["p95"] / alone["p95"]
    lines = [
        "## Load: interactive /predict alone and during bulk work (issue 8)", "",
        stamp(f"python -m bench.load --clients {args.clients} --requests {args.requests} --chunk {args.chunk}"),
        f"One worker (ViT-B/32 architecture, fp32, CPU), api under gunicorn (16 threads), Redis, all on loopback. "
        f"{args.clients} concurrent clients, one distinct {LABELS.__len__()}-label photo per request (no cache hits).", "",
        "| phase | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |", "|---|---|---|---|---|---|---|---|",
        row("interactive alone", alone), row(f"interactive during bulk ({args.chunk}-image chunks)", busy), "",
        f"- p95 during bulk / p95 alone: **{ratio:.2f}×**; a request waits at most for the bulk chunk in progress "
        f"(the interactive queue is drained first).",
        f"- bulk: {bulk_images} images in {len(done)} chunks in {bulk_wall:.1f} s ({bulk_images / bulk_wall:.1f} img/s "
        f"while serving the interactive load), {bulk_failed} failed.",
        f"- memory (RSS incl. children, sampled every second): worker {min(worker_mb):.0f}-{max(worker_mb):.0f} MB "
        f"(mean of first third {np.mean(worker_mb[:third]):.0f}, last third {np.mean(worker_mb[-third:]):.0f}); "
        f"api {min(api_mb):.0f}-{max(api_mb):.0f} MB.",
        f"- errors: {len(alone['errors']) + len(busy['errors'])} "
        + (f"(first: {(alone['errors'] + busy['errors'])[0]})" if alone["errors"] + busy["errors"] else "(goal: zero)"),
    ]
    body = "\n".join(lines)
    print(body)
    write_section("load", body)


if __name__ == "__main__":
    main()
