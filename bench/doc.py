"""Write a benchmark's section of docs/BENCHMARKS.md between markers, leaving the rest alone."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery number here was written by the command shown with it. Re-run the command to refresh its section.\n"


def machine() -> str:
    """A one-line description of where the numbers come from."""
    try:
        import torch

        threads = torch.get_num_threads()
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
        torch_v = torch.__version__
    except Exception:  # noqa: BLE001
        threads, gpu, torch_v = "?", "?", "not installed"
    cpu = platform.processor() or platform.machine()
    return f"{platform.node()} — {os.cpu_count()} cores ({cpu}), {gpu}, torch {torch_v} ({threads} threads), Python {platform.python_version()}"


def stamp(command: str) -> str:
    return f"Command: `{command}`  \nDate: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  \nMachine: {machine()}\n"


def write_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section ``name``."""
    text = doc.read_text() if doc.exists() else HEADER
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
