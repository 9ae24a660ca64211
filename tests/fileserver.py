"""A loopback HTTP server standing in for Label Studio's file serving and for arbitrary image hosts.

It checks ``Authorization`` on ``/data/upload/...`` exactly as Label Studio 1.23 does (legacy
``Token``, or ``Bearer`` access tokens minted by ``/api/token/refresh/`` from a PAT).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LEGACY = "legacy-token-0123456789"
PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"
ACCESS = "access-token-abc"


class FileServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[tuple[str, str]] = []  # (path, Authorization)
        self.refreshes = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/api/token/refresh/" and body.get("refresh") == PAT:
                    server.refreshes += 1
                    self._send(200, json.dumps({"access": ACCESS}).encode(), "application/json")
                else:
                    self._send(401, b'{"detail":"invalid"}', "application/json")

            def do_GET(self):
                auth = self.headers.get("Authorization", "")
                server.requests.append((self.path, auth))
                path = self.path.split("?")[0]
                if path.startswith("/data/upload/") and auth not in (f"Token {LEGACY}", f"Bearer {ACCESS}"):
                    return self._send(401, b'{"detail":"Authentication credentials were not provided."}', "application/json")
                if path.startswith("/slow"):  # /slow, /slow1, ...: 3 s before answering
                    time.sleep(3)
                if path == "/html":
                    return self._send(200, b"<!DOCTYPE html><html><body>login</body></html>", "text/html")
                if path == "/redirect":
                    from urllib.parse import parse_qs, urlsplit

                    self.send_response(302)
                    self.send_header("Location", parse_qs(urlsplit(self.path).query)["to"][0])
                    self.end_headers()
                    return None
                if path in server.files:
                    return self._send(200, server.files[path], "image/jpeg")
                return self._send(404, b"not found", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "FileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
