"""A small HTTP server on 127.0.0.1 for the media download tests: routes are plain functions, and every
request (path and headers) is recorded so tests can see what reached the server — and what did not.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class SeenRequest:
    path: str
    headers: dict[str, str]  # lower-case names


Route = Callable[[BaseHTTPRequestHandler], None]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # clients hanging up on purpose (size and time limits) are not errors here


class MediaHttpServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[SeenRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                path = urlsplit(self.path).path
                with server._lock:
                    server.requests.append(SeenRequest(self.path, {k.lower(): v for k, v in self.headers.items()}))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    route = server.routes.get(path)
                    if route is None:
                        send(self, 404, b"not found")
                    else:
                        route(self)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def log_message(self, *args) -> None:
                pass

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self) -> MediaHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def url(self, path: str) -> str:
        return self.origin + path

    def seen(self, path: str) -> list[SeenRequest]:
        return [r for r in self.requests if urlsplit(r.path).path == path]

    def serve_file(self, path: str, body: bytes, etag: str | None = None, last_modified: str | None = None,
                   token: str | None = None) -> None:
        """A file with optional validators (answering conditional requests with 304) and optional auth."""

        def route(handler: BaseHTTPRequestHandler) -> None:
            if token is not None and handler.headers.get("Authorization") != token:
                send(handler, 401, b'{"detail": "Authentication credentials were not provided."}')
                return
            validators = {"ETag": etag, "Last-Modified": last_modified}
            if (etag and handler.headers.get("If-None-Match") == etag) or (
                last_modified and not etag and handler.headers.get("If-Modified-Since") == last_modified
            ):
                send(handler, 304, b"", validators)
                return
            send(handler, 200, body, validators)

        self.routes[path] = route


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str | None] | None = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        if value is not None:
            handler.send_header(name, value)
    if status != 304:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if body:
        handler.wfile.write(body)


def redirect(to: str, status: int = 302) -> Route:
    return lambda handler: send(handler, status, b"", {"Location": to})


def failing(times: int, status: int, then: Route) -> Route:
    """Answers `status` the first `times` requests, then behaves like `then`."""
    calls = {"n": 0}

    def route(handler: BaseHTTPRequestHandler) -> None:
        calls["n"] += 1
        if calls["n"] <= times:
            send(handler, status, b"try again")
        else:
            then(handler)

    return route


def dribbling(total: int, every_seconds: float) -> Route:
    """Declares `total` bytes and sends one at a time: a server too slow for the time limit."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        try:
            for _ in range(total):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(every_seconds)
        except (BrokenPipeError, ConnectionResetError):
            pass

    return route


def endless(chunk: int = 1 << 16) -> Route:
    """A body without Content-Length that never ends (HTTP/1.0 style, closed by the client)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            while True:
                handler.wfile.write(b"\0" * chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass

    return route


def delayed(seconds: float, then: Route) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        then(handler)

    return route


def declaring(size: int) -> Route:
    """Announces a `size`-byte body and sends only its first bytes: what matters is the announcement."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(size))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(b"\0" * 1024)

    return route
