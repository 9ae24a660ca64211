"""Zero-shot accuracy and calibration of the offline engine on both shared eval sets.

    python -m bench.accuracy [--data ../shared/data]

Runs ``lsclip eval``'s harness in-process (same code path as /predict) and writes the
"accuracy" section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from bench.doc import stamp, write_section

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    args = parser.parse_args()
    os.environ["LSCLIP_MODEL"] = "offline"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO)

    from backend import runtime
    from backend.evaluation.harness import evaluate
    from backend.evaluation.plots import reliability_diagram
    from backend.settings import reset_settings, get_settings

    reset_settings()
    engine = runtime.engine()
    rows = []
    for name in ("cifar10-eval", "imagenette-eval"):
        summary = evaluate(engine, Path(args.data) / name, get_settings())
        reliability_diagram(summary["_reliability"], ROOT / "docs" / f"reliability-offline-{name}.png",
                            title=f"offline engine, {name}")
        rows.append(f"| {name} | {summary['n']} | {summary['top1'] * 100:.1f} % | {summary['ece'] * 100:.1f} % | "
                    f"{summary['images_per_s']:.1f} | ![](reliability-offline-{name}.png) |")
        logging.info("%s: %s", name, {k: summary[k] for k in ("n", "top1", "ece", "images_per_s")})
    body = "\n".join([
        "## Offline engine: zero-shot accuracy and calibration",
        "",
        stamp("python -m bench.accuracy"),
        "Same numbers per set: `LSCLIP_MODEL=offline lsclip eval ../shared/data/<set> --json`.",
        "imagenette-eval's labels are ImageNet classes (an in-vocabulary control for an ImageNet classifier),",
        "cifar10-eval's are zero-shot for it. CLIP ViT-B/32 reaches ~90 % on CIFAR-10 (CLIP paper / open_clip):",
        "the offline engine is a fallback, not a CLIP replacement.",
        "",
        "| set | images | top-1 | ECE (15 bins) | img/s (this CPU, end to end) | reliability |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    write_section("accuracy", body)


if __name__ == "__main__":
    main()
