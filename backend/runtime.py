"""The engine a worker process keeps resident, shared by every job it runs in-process."""

from __future__ import annotations

import logging
import threading

from backend.engines import Engine, load_engine
from backend.settings import get_settings

log = logging.getLogger(__name__)

_engine: Engine | None = None
_loads = 0
_lock = threading.Lock()


def engine() -> Engine:
    """The resident engine, loaded on first use if the worker did not load it at start."""
    global _engine, _loads
    with _lock:
        if _engine is None:
            _engine = load_engine(get_settings())
            _loads += 1
        return _engine


def set_engine(value: Engine | None) -> None:
    """Install an already loaded engine (the worker does this at start; tests may too)."""
    global _engine, _loads
    with _lock:
        _engine = value
        if value is not None:
            _loads += 1


def load_count() -> int:
    """How many times this process loaded an engine (1 for a healthy worker)."""
    return _loads
