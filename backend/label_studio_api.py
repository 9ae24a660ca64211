"""Label Studio's REST API from the worker side, through label-studio-sdk.

The Label Studio host and token of a project come from ``/setup`` (hostname, the legacy token
Label Studio sends) unless the workers have their own ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``
(a legacy token or a personal access token: the SDK refreshes PATs itself).
"""

from __future__ import annotations

from backend.settings import Settings


def credentials(settings: Settings, project: dict[str, str]) -> tuple[str, str]:
    """(hostname, token) to reach a project's Label Studio: /setup's host unless only the settings know one."""
    hostname = project.get("hostname") or settings.label_studio_url
    token = settings.label_studio_api_key or project.get("access_token", "")
    return hostname, token


def client(hostname: str, token: str):
    """A label-studio-sdk client (legacy token or personal access token)."""
    from label_studio_sdk.client import LabelStudio

    if not hostname or not token:
        raise RuntimeError("reaching Label Studio needs its URL and a token: connect the project (Label Studio "
                           "sends both in /setup) or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY on the workers")
    return LabelStudio(base_url=hostname, api_key=token)
