"""``lsclip connect``: register this backend on a Label Studio project and check both directions.

Registers the ML backend (interactive pre-annotation on), reads back the connection state Label
Studio got from ``/health`` and ``/setup``, makes sure the project webhook exists (with the shared
secret header when ``LSCLIP_WEBHOOK_SECRET`` is set) and says what to change in Label Studio's
settings when its SSRF protection blocks something.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import requests

from backend.settings import Settings
from plugin.client import PluginError, api_error_text

log = logging.getLogger(__name__)

WEBHOOK_SECRET_HEADER = "X-Lsclip-Webhook-Secret"
STATE_NAMES = {"CO": "connected", "DI": "disconnected (/health failed)", "ER": "error (/setup failed)",
               "TR": "training", "PR": "predicting"}


@dataclass
class ConnectReport:
    """What ``connect`` did and what the user still has to do."""

    ml_backend_id: int | None = None
    ml_state: str = ""
    webhook_id: int | None = None
    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.ml_state == "CO" and self.webhook_id is not None and not self.todo


def _blocked_hint(text: str) -> str | None:
    lowered = text.lower()
    if "reserved network address" in lowered or "ssrf" in lowered or "403" in lowered:
        return ("Label Studio refuses a backend on a local/private address: start Label Studio with "
                "ML_BLOCK_LOCAL_IP=false (ML backend) and SSRF_PROTECTION_ENABLED=false (webhooks), "
                "or serve the backend on an address Label Studio allows")
    return None


def check_backend(url: str, settings: Settings) -> dict:
    """The backend's own /health, as this machine sees it."""
    auth = (settings.basic_auth_user, settings.basic_auth_pass) if settings.basic_auth_enabled else None
    try:
        reply = requests.get(url.rstrip("/") + "/health", auth=auth, timeout=5)
    except requests.RequestException as exc:
        raise PluginError(f"the backend at {url} does not answer ({type(exc).__name__}); start it with "
                          "`lsclip serve` or pass --url") from exc
    body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
    if reply.status_code != 200:
        raise PluginError(f"the backend at {url} is not healthy (HTTP {reply.status_code}): "
                          f"{body.get('reason') or body.get('error') or reply.text[:200]}")
    return body


def connect(ls, project_id: int, backend_url: str, settings: Settings, title: str = "lsclip") -> ConnectReport:
    """Register ``backend_url`` on the project, check the connection from Label Studio's side, ensure the webhook."""
    report = ConnectReport()
    health = check_backend(backend_url, settings)
    report.done.append(f"backend {backend_url} is up: {health.get('workers')} worker(s), model {health.get('model_version')}")
    if health.get("warning"):
        report.done.append(f"WARNING from the backend: {health['warning']}")
    try:
        ls.projects.get(project_id)
    except Exception as exc:  # noqa: BLE001 - the SDK raises ApiError subclasses
        raise PluginError(f"project {project_id} is not reachable in Label Studio ({api_error_text(exc)})") from exc

    backend_url = backend_url.rstrip("/")
    ml = next((m for m in ls.ml.list(project=project_id) if (m.url or "").rstrip("/") == backend_url), None)
    auth = {}
    if settings.basic_auth_enabled:
        auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": settings.basic_auth_user,
                "basic_auth_pass": settings.basic_auth_pass}
    if ml is None:
        try:
            ml = ls.ml.create(project=project_id, url=backend_url, title=title, is_interactive=True, **auth)
            report.done.append(f"registered the ML backend (id {ml.id}, interactive pre-annotation on)")
        except Exception as exc:  # noqa: BLE001
            text = api_error_text(exc)
            # Label Studio may create the backend and then fail on the webhook (403): look again
            ml = next((m for m in ls.ml.list(project=project_id) if (m.url or "").rstrip("/") == backend_url), None)
            if ml is None:
                raise PluginError(f"Label Studio refused the ML backend: {text}. {_blocked_hint(text) or ''}".strip()) from exc
            report.done.append(f"registered the ML backend (id {ml.id}), but Label Studio said: {text}")
    else:
        report.done.append(f"the ML backend is already registered (id {ml.id})")
        if not ml.is_interactive or auth:
            ls.ml.update(ml.id, url=backend_url, project=project_id, is_interactive=True, **auth)  # PATCH needs url+project
            report.done.append("turned interactive pre-annotation on" + (" and set Basic auth" if auth else ""))
    report.ml_backend_id = ml.id
    # GET /api/ml/<id> makes Label Studio call /health and /setup now
    ml = ls.ml.get(ml.id)
    report.ml_state = str(getattr(ml, "state", "") or "")
    if report.ml_state == "CO":
        report.done.append("Label Studio reached /health and /setup: connected")
    else:
        error = getattr(ml, "error_message", "") or ""
        report.todo.append(f"Label Studio reports the backend as {STATE_NAMES.get(report.ml_state, report.ml_state)}"
                           f"{': ' + error if error else ''}; check that Label Studio can reach {backend_url} "
                           "(ML_BLOCK_LOCAL_IP=false for a local address)")
    _ensure_webhook(ls, project_id, backend_url + "/webhook", settings, report)
    return report


def _ensure_webhook(ls, project_id: int, url: str, settings: Settings, report: ConnectReport) -> None:
    headers = {WEBHOOK_SECRET_HEADER: settings.webhook_secret} if settings.webhook_secret else {}
    hooks = [w for w in ls.webhooks.list(project=project_id) if (w.url or "").rstrip("/") == url]
    try:
        if not hooks:
            hook = ls.webhooks.create(project=project_id, url=url, send_payload=True, send_for_all_actions=True,
                                      is_active=True, headers=headers)
            report.done.append(f"created the webhook {url} (id {hook.id})" + (" with the shared secret header" if headers else ""))
        else:
            hook = hooks[0]
            current = dict(getattr(hook, "headers", None) or {})
            if (headers and current.get(WEBHOOK_SECRET_HEADER) != settings.webhook_secret) or not hook.is_active \
                    or not hook.send_payload:
                ls.webhooks.update(hook.id, url=url, send_payload=True, send_for_all_actions=True,
                                   is_active=True, headers={**current, **headers})
                report.done.append(f"updated the webhook {url} (id {hook.id}): active, with payload"
                                   + (", shared secret header set" if headers else ""))
            else:
                report.done.append(f"the webhook {url} exists (id {hook.id})")
        report.webhook_id = hook.id
    except Exception as exc:  # noqa: BLE001
        text = api_error_text(exc)
        report.todo.append(f"could not create the webhook {url}: {text}. "
                           + (_blocked_hint(text) or "create it in Project → Settings → Webhooks")
                           + "; until then annotations only reach the backend through `lsclip sync`")


def format_report(report: ConnectReport) -> str:
    lines = [f"  done: {line}" for line in report.done] + [f"  TODO: {line}" for line in report.todo]
    lines.append("connected" if report.ok else "NOT fully connected: see TODO above")
    return "\n".join(lines)
