"""Benchmark inputs shared by the speed benchmarks: 20 labels and real JPEGs upscaled like camera photos."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

from PIL import Image

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck", "church",
          "parachute", "golf ball", "chain saw", "gas pump", "French horn", "tench", "cassette player",
          "garbage truck", "English springer"]


def upscaled_jpegs(data: Path, count: int, factor: int = 2) -> list[bytes]:
    """The first ``count`` Imagenette photos (eval, then pool), upscaled ×``factor`` and re-encoded as JPEG."""
    paths = []
    for name in ("imagenette-eval", "imagenette-pool"):
        with open(data / name / "labels.csv") as fh:
            paths += [data / name / row["path"] for row in csv.DictReader(fh)]
    out = []
    for path in paths[:count]:
        image = Image.open(path).convert("RGB")
        image = image.resize((image.width * factor, image.height * factor), Image.BICUBIC)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
