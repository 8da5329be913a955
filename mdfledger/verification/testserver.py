"""A scripted HTTP server on loopback for the page checks' tests and the URL bench.

Threaded, bound to 127.0.0.1 on a free port, optionally TLS. Each route is a `Reply`, a list of
replies served in turn (the last one repeats: "500 then 200"), or a function that writes the
answer itself (endless, slow-drip). It ships in the package so `mdfledger bench urls` runs with
nothing but the installed package; production code never starts it.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["PageServer", "Reply", "Route", "drip", "endless", "html", "redirect", "slow_headers"]


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


Writer = Callable[[BaseHTTPRequestHandler], None]
Route = Reply | Sequence[Reply] | Writer


@dataclass(frozen=True)
class Seen:
    """A request as the server received it."""

    path: str
    headers: dict[str, str]


def html(body: str, *, title: str = "", status: int = 200, charset: str = "utf-8") -> Reply:
    markup = f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"
    return Reply(status, markup.encode(charset), f"text/html; charset={charset}")


def redirect(location: str, status: int = 302) -> Reply:
    return Reply(status, b"", None, (("Location", location),))


def endless(piece: bytes = b"<p>" + b"more " * 200 + b"</p>\n", limit: int = 256 << 20) -> Writer:
    """A chunked page that never ends (stops after `limit` bytes or when the client leaves)."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        sent = 0
        while sent < limit:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            sent += len(piece)

    return write


def drip(interval: float = 0.5, body: bytes = b"<p>slow</p>" * 100) -> Writer:
    """Headers at once, then the body one byte every `interval` seconds."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.flush()
        for byte in body:
            time.sleep(interval)
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    return write


def slow_headers(interval: float = 0.5) -> Writer:
    """The status line and headers one byte every `interval` seconds, never finishing."""

    def write(handler: BaseHTTPRequestHandler) -> None:
        line = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"x" * 10_000
        for byte in line:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(interval)

    return write


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.close_connection = True
        owner = self.server.owner
        path = urlsplit(self.path).path
        owner.record(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = owner.next_reply(path)
        if callable(route):
            route(self)
            return
        self.send_response(route.status)
        if route.content_type:
            self.send_header("Content-Type", route.content_type)
        for name, value in route.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(route.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(route.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `PageServer.seen` instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the bench connects from several threads at once
    owner: PageServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up mid-answer on purpose (size cap, deadline)


class PageServer:
    """Start with `with PageServer({...}) as server:`; `server.url("/page")` is its address."""

    def __init__(
        self, routes: Mapping[str, Route] | None = None, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self._routes: dict[str, Route] = dict(routes or {})
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.seen: list[Seen] = []
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def route(self, path: str, route: Route) -> None:
        with self._lock:
            self._routes[path] = route
            self._served.pop(path, None)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def next_reply(self, path: str) -> Reply | Writer:
        with self._lock:
            route = self._routes.get(path)
            if route is None:
                return html("<h1>Not Found</h1>", title="Not Found", status=404)
            if isinstance(route, Reply) or callable(route):
                return route
            served = self._served.get(path, 0)
            self._served[path] = served + 1
            return route[min(served, len(route) - 1)]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
