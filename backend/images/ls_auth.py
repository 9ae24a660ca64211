"""Authorization for files served by Label Studio (``/data/upload/...``, ``/data/local-files/...``).

Label Studio 1.23 accepts ``Authorization: Token <legacy token>``; a personal access
token (a JWT refresh token) must first be exchanged at ``/api/token/refresh/`` for a
5-minute access token sent as ``Bearer``. Both kinds are handled here.
"""

from __future__ import annotations

import logging
import threading
import time

import requests

log = logging.getLogger(__name__)

ACCESS_TOKEN_LIFETIME_S = 240  # Label Studio's access tokens live 300 s


def is_personal_access_token(token: str) -> bool:
    """PATs are JWTs: three dot-separated base64url parts starting with ``eyJ``."""
    return token.startswith("eyJ") and token.count(".") == 2


class LabelStudioAuth:
    """Builds the Authorization header for one Label Studio host and token, refreshing PATs."""

    def __init__(self, hostname: str, token: str, timeout_s: float = 10.0) -> None:
        self.hostname = hostname.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._access = ""
        self._access_until = 0.0
        self._lock = threading.Lock()

    def header(self) -> dict[str, str]:
        if not self.token:
            return {}
        if not is_personal_access_token(self.token):
            return {"Authorization": f"Token {self.token}"}
        with self._lock:
            if time.monotonic() >= self._access_until:
                self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> None:
        response = requests.post(
            f"{self.hostname}/api/token/refresh/", json={"refresh": self.token}, timeout=self.timeout_s
        )
        if response.status_code != 200:
            # never echo the token: only the status
            raise PermissionError(
                f"Label Studio refused the personal access token (HTTP {response.status_code} from /api/token/refresh/); "
                "check LABEL_STUDIO_API_KEY"
            )
        self._access = response.json()["access"]
        self._access_until = time.monotonic() + ACCESS_TOKEN_LIFETIME_S


_AUTH_CACHE: dict[tuple[str, str], LabelStudioAuth] = {}
_AUTH_LOCK = threading.Lock()


def auth_for(hostname: str, token: str) -> LabelStudioAuth:
    """One shared :class:`LabelStudioAuth` per (host, token), so access tokens are reused."""
    key = (hostname.rstrip("/"), token)
    with _AUTH_LOCK:
        if key not in _AUTH_CACHE:
            _AUTH_CACHE[key] = LabelStudioAuth(*key)
        return _AUTH_CACHE[key]
