"""The Label Studio client the plugin commands share, and the errors they report."""

from __future__ import annotations

from typing import Any

from backend.settings import Settings, get_settings


class PluginError(RuntimeError):
    """A failure the user can fix; the CLI prints the message and exits 2."""


def label_studio(settings: Settings | None = None):
    """A label-studio-sdk client from ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``."""
    from label_studio_sdk.client import LabelStudio

    settings = settings or get_settings()
    if not settings.label_studio_url or not settings.label_studio_api_key:
        raise PluginError("set LABEL_STUDIO_URL (e.g. http://localhost:8080) and LABEL_STUDIO_API_KEY "
                          "(Account & Settings → Personal Access Token, or a legacy token)")
    return LabelStudio(base_url=settings.label_studio_url, api_key=settings.label_studio_api_key)


def api_error_text(exc: Exception) -> str:
    """Label Studio's own message for a failed API call (status and body), else the exception."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    return f"HTTP {status}: {body}" if status is not None else f"{type(exc).__name__}: {exc}"


def project_tasks(ls, project_id: int) -> list[dict[str, Any]]:
    """Every task of a project as plain dicts, annotations and predictions included (``fields=all``)."""
    tasks = []
    for task in ls.tasks.list(project=project_id, fields="all"):
        raw = task.dict() if hasattr(task, "dict") else dict(task)
        raw["annotations"] = [a if isinstance(a, dict) else a.dict() for a in raw.get("annotations") or []]
        raw["predictions"] = [p if isinstance(p, dict) else p.dict() for p in raw.get("predictions") or []]
        tasks.append(raw)
    return tasks
