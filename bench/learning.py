"""Learning curve: zero-shot vs calibrated top-1 and ECE as corrections arrive, offline engine.

    python -m bench.learning [--data ../shared/data] [--shots 0 1 2 4 8 16] [--seeds 5]

For each eval set and K, K corrections per class are drawn from the matching pool and fed through the
learn path (``lsclip eval EVAL --support POOL --shots K --seeds N``); means over seeds. Writes the
"learning" section of docs/BENCHMARKS.md and docs/learning-curve.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path

from bench.doc import stamp, write_section

ROOT = Path(__file__).resolve().parents[1]
SETS = (("cifar10-eval", "cifar10-pool"), ("imagenette-eval", "imagenette-pool"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ["LSCLIP_MODEL"] = "offline"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from backend.embedded_redis import start_embedded

    server = start_embedded(Path(tempfile.mkdtemp(prefix="lsclip-bench-")) / "redis.db")  # one cache for every K
    os.environ["REDIS_URL"] = f"unix://{server.socket_file}"

    from backend import runtime
    from backend.evaluation.fewshot import evaluate_fewshot
    from backend.evaluation.plots import line_chart
    from backend.settings import get_settings, reset_settings

    reset_settings()
    engine = runtime.engine()
    results: dict[str, list[dict]] = {}
    for eval_name, pool_name in SETS:
        for k in args.shots:
            r = evaluate_fewshot(engine, Path(args.data) / eval_name, Path(args.data) / pool_name, k, args.seeds,
                                 get_settings())
            logging.info("%s K=%d: %s", eval_name, k, json.dumps({x: r[x] for x in ("zero_shot", "calibrated")}))
            results.setdefault(eval_name, []).append(r)
    series = {}
    for name, rows in results.items():
        series[f"{name} calibrated"] = [r["calibrated"]["top1"] * 100 for r in rows]
        series[f"{name} zero-shot"] = [r["zero_shot"]["top1"] * 100 for r in rows]
    line_chart(args.shots, series, ROOT / "docs" / "learning-curve.png", "Offline engine: top-1 vs corrections per class",
               "corrections per class (K)", "top-1 (%)")
    lines = [
        "## Learning from corrections (offline engine)",
        "",
        stamp("python -m bench.learning"),
        f"Per K: `LSCLIP_MODEL=offline lsclip eval ../shared/data/<set>-eval --support ../shared/data/<set>-pool "
        f"--shots K --seeds {args.seeds} --json`. K corrections per class drawn from the pool (disjoint from the eval set) go "
        "through the learn path (webhook event → learn job → support set → CV-gated refit); means over seeds.",
        "",
        "| eval set | K | zero-shot top-1 | calibrated top-1 | Δ top-1 | zero-shot ECE | calibrated ECE | layers kept (per seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in results.items():
        for r in rows:
            z, c = r["zero_shot"], r["calibrated"]
            layers = ", ".join(s["layer"] for s in r["per_seed"]) or "—"
            lines.append(f"| {name} | {r['shots']} | {z['top1'] * 100:.1f} % | {c['top1'] * 100:.1f} % | "
                         f"{(c['top1'] - z['top1']) * 100:+.1f} | {z['ece'] * 100:.1f} % | {c['ece'] * 100:.1f} % | {layers} |")
    lines += ["", "![learning curve](learning-curve.png)"]
    write_section("learning", "\n".join(lines))
    (ROOT / "docs" / "learning-results.json").write_text(json.dumps(results, indent=1))
    from backend.embedded_redis import stop_embedded

    stop_embedded(server)


if __name__ == "__main__":
    main()
