"""Which URLs a worker may fetch (SSRF guard).

Allowed: ``data:`` URIs; the Label Studio host(s) (from ``/setup`` and ``LABEL_STUDIO_URL``); and
the hosts of ``LSCLIP_ALLOWED_HOSTS``:

- ``host`` or ``host:port``: that host, whatever it resolves to (how to allow a private image server);
- ``*.example.com``: its subdomains, when every address they resolve to is public;
- ``*``: any host whose addresses are all public.

Everything else is refused: other schemes (``file://``, ``ftp://``...), hosts not listed, and
loopback, private, link-local (cloud metadata 169.254.169.254) or reserved addresses that are not
listed by name. Redirects are checked hop by hop by the fetcher.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from backend.images.errors import ImageError


def host_key(url: str) -> str:
    """``host`` or ``host:port`` of a URL, lower-cased."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


class UrlPolicy:
    """Decides per URL; ``trusted`` are Label Studio hosts, ``allowed`` the explicit allow-list."""

    def __init__(self, trusted_urls: list[str], allowed_hosts: tuple[str, ...]) -> None:
        self.trusted = {host_key(u) for u in trusted_urls if u}
        entries = {h.strip().lower() for h in allowed_hosts if h.strip()}
        self.any_public = "*" in entries
        self.suffixes = tuple(e[1:] for e in entries if e.startswith("*."))
        self.exact = {e for e in entries if not e.startswith("*")}

    def is_trusted(self, url: str) -> bool:
        return host_key(url) in self.trusted

    def check(self, url: str) -> None:
        """Raise :class:`ImageError` unless ``url`` may be fetched."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ImageError(f"URL scheme {parts.scheme or 'none'!r} is not allowed (only http, https and data:)")
        host = (parts.hostname or "").lower()
        if not host:
            raise ImageError("URL has no host")
        if self.is_trusted(url) or host in self.exact or host_key(url) in self.exact:
            return
        listed = self.any_public or host.endswith(self.suffixes) if self.suffixes else self.any_public
        try:
            infos = socket.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
        except socket.gaierror as exc:
            raise ImageError(f"cannot resolve host {host!r}: {exc}") from exc
        for info in infos:
            address = ipaddress.ip_address(info[4][0].split("%")[0])
            if not address.is_global:
                raise ImageError(
                    f"host {host!r} resolves to a non-public address ({address}); "
                    "add it to LSCLIP_ALLOWED_HOSTS if the worker should fetch from it"
                )
        if not listed:
            raise ImageError(f"host {host!r} is neither Label Studio's nor in LSCLIP_ALLOWED_HOSTS; add it there "
                             "(or '*.domain', or '*' for any public host) if the worker should fetch from it")
