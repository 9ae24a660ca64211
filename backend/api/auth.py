"""Optional Basic auth for protocol endpoints and the shared-secret header for webhooks."""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Request

from backend.settings import Settings

WEBHOOK_SECRET_HEADER = "X-Lsclip-Webhook-Secret"


def basic_auth_ok(request: Request, settings: Settings) -> bool:
    """True when Basic auth is off, or the request carries the configured user and password."""
    if not settings.basic_auth_enabled:
        return True
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    user_ok = hmac.compare_digest(user.encode(), settings.basic_auth_user.encode())
    pass_ok = hmac.compare_digest(password.encode(), settings.basic_auth_pass.encode())
    return user_ok and pass_ok


def webhook_secret_ok(request: Request, settings: Settings) -> bool:
    """True when the webhook secret header matches ``LSCLIP_WEBHOOK_SECRET``."""
    if not settings.webhook_secret:
        return False
    given = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    return hmac.compare_digest(given.encode(), settings.webhook_secret.encode())


def webhook_allowed(request: Request, settings: Settings) -> bool:
    """Webhooks pass with the secret header or Basic auth; open only when neither is configured.

    Label Studio's event webhooks carry no Basic auth, only the webhook's own headers, so
    set the secret header (or an Authorization header) on the webhook in Label Studio.
    """
    if not settings.webhook_secret and not settings.basic_auth_enabled:
        return True
    return webhook_secret_ok(request, settings) or (settings.basic_auth_enabled and basic_auth_ok(request, settings))
