"""One logging format for every lsclip process."""

from __future__ import annotations

import logging


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
    )
    for noisy in ("urllib3", "httpx", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
