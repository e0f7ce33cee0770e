"""A fault-injecting HTTP proxy on loopback, in front of a real server, for tests.

Label Studio speaks plain HTTP/1.1 on loopback, so the proxy reads each request whole, forwards it
(one request per connection: `Connection: close` both ways) and relays the response, unless a fault
armed for the request's path says otherwise:

    reset(path, after=N)      N bytes of the body, then a TCP reset (the connection drops mid-download)
    cut(path, after=N)        the head without Content-Length, N bytes of the body, then a clean close:
                              the body looks complete to the client but is short (a damaged download)
    stall(path, seconds)      no answer for `seconds` (`after=N`: the head and N bytes first), then a reset
    status(code, path)        the proxy answers `code` itself (a gateway's 502/503), the server sees nothing
    call(path, action)        `action()` runs before the request is forwarded (e.g. to kill the server)

A fault hits `times` matching requests (1: a transient fault) or every one (`times=None`: a persistent
one). When the server cannot be reached, the proxy answers 502 as a gateway would. `seen` lists every
request with the fault that hit it, so a test can tell a fault really happened; `gateway_errors`
counts the 502s answered for a server that was down.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024
CLIENT_TIMEOUT = 30.0  # a client that sends nothing for this long is dropped
UPSTREAM_TIMEOUT = 300.0  # the Community Edition builds a snapshot before answering its POST


@dataclass
class Fault:
    kind: str  # "reset" | "cut" | "stall" | "status" | "call"
    path: str = ""  # a regular expression searched in the request's path (without the query)
    method: str | None = None
    times: int | None = 1  # matching requests it hits; None: all of them
    after: int | None = None  # body bytes relayed first (reset, cut, stall); stall's None: before the head
    seconds: float = 0.0  # stall
    code: int = 502  # status
    action: Callable[[], None] | None = None  # call

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and re.search(self.path, path) is not None


def reset(path: str, after: int = 0, times: int | None = 1) -> Fault:
    return Fault("reset", path, after=after, times=times)


def cut(path: str, after: int, times: int | None = 1) -> Fault:
    return Fault("cut", path, after=after, times=times)


def stall(path: str, seconds: float, after: int | None = None, times: int | None = 1,
          method: str | None = None) -> Fault:
    return Fault("stall", path, method=method, after=after, seconds=seconds, times=times)


def status(code: int, path: str = "", times: int | None = 1) -> Fault:
    return Fault("status", path, code=code, times=times)


def call(path: str, action: Callable[[], None], times: int | None = 1) -> Fault:
    return Fault("call", path, action=action, times=times)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    fault: str | None  # the kind of fault that hit the request


@dataclass
class _Request:
    method: str
    path: str
    head: bytes  # rewritten to close the connection after the response
    body: bytes = field(repr=False)


class FaultProxy:
    """`with FaultProxy(port) as proxy:` serves `proxy.url`, forwarding to 127.0.0.1:`port`."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self.gateway_errors = 0  # requests answered 502 because the server was down or died answering
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    def __enter__(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(5)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                _shutdown(connection)
        for thread in self._threads:
            thread.join(5)

    # --- faults ------------------------------------------------------------------------------------

    def inject(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        """No fault armed any more, and `seen` starts afresh."""
        with self._lock:
            self._faults.clear()
            self.seen.clear()
            self.gateway_errors = 0

    def hits(self, kind: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.fault is not None and (kind is None or s.fault == kind)]

    def _take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method, path)), None)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
            self.seen.append(Seen(method, path, fault.kind if fault else None))
            return fault

    # --- serving -----------------------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(0.2)  # closing a socket does not wake a thread blocked in accept()
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed: stopping
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._connections.add(client)
                self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(CLIENT_TIMEOUT)
        try:
            request = _read_request(client)
            if request is None:
                return
            fault = self._take(request.method, request.path)
            kind = fault.kind if fault else None
            if fault is not None and fault.kind == "status":
                client.sendall(_answer(fault.code))
                return
            if fault is not None and fault.kind == "call" and fault.action is not None:
                fault.action()
            if fault is not None and fault.kind == "stall" and fault.after is None:
                self._stopping.wait(fault.seconds)
                _reset(client)
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                self._gateway_error(client)  # as a gateway answers when its server is down
                return
            with upstream:
                upstream.settimeout(UPSTREAM_TIMEOUT)
                upstream.sendall(request.head + request.body)
                self._relay(upstream, client, fault if kind in ("reset", "cut", "stall") else None)
        except OSError:
            pass  # the client went away, or the server did: nothing more to relay
        finally:
            with self._lock:
                self._connections.discard(client)
            client.close()

    def _gateway_error(self, client: socket.socket) -> None:
        with self._lock:
            self.gateway_errors += 1
        client.sendall(_answer(502))

    def _relay(self, upstream: socket.socket, client: socket.socket, fault: Fault | None) -> None:
        try:
            head, body = _read_head(upstream)
        except OSError:
            head, body = None, b""
        if head is None:  # the server went away without answering (it died mid-request)
            self._gateway_error(client)
            return
        lines = head.split(b"\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in lines[1:]
                       if line.lower().startswith(b"content-length:")), None)
        drop = (b"connection:", b"keep-alive:") + ((b"content-length:",) if fault and fault.kind == "cut" else ())
        kept = [line for line in lines[1:] if line and not line.lower().startswith(drop)]
        client.sendall(b"\r\n".join([lines[0], *kept, b"Connection: close"]) + HEAD_END)
        limit = fault.after if fault is not None else None
        sent = 0
        while True:
            if limit is not None and sent + len(body) >= limit:
                client.sendall(body[: limit - sent])
                break
            client.sendall(body)
            sent += len(body)
            if length is not None and sent >= length:
                break
            body = upstream.recv(65536)
            if not body:
                break
        if fault is None:
            return
        if fault.kind == "stall":
            self._stopping.wait(fault.seconds)
        if fault.kind == "cut":
            client.shutdown(socket.SHUT_RDWR)  # a clean close: the short body looks complete
        else:
            _reset(client)


def _read_head(connection: socket.socket) -> tuple[bytes | None, bytes]:
    """The message's head (without the blank line) and the body bytes read past it."""
    data = b""
    while HEAD_END not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
        if len(data) > MAX_HEAD:
            raise OSError("head too long")
    head, _, rest = data.partition(HEAD_END)
    return head, rest


def _read_request(client: socket.socket) -> _Request | None:
    head, body = _read_head(client)
    if head is None:
        return None
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].decode("latin-1").split(" ", 2)
    headers = [line for line in lines[1:] if line]
    length = next((int(line.split(b":", 1)[1]) for line in headers if line.lower().startswith(b"content-length:")), 0)
    if any(line.lower().startswith(b"transfer-encoding:") for line in headers):
        raise OSError("chunked request bodies are not supported")  # httpx sends Content-Length for ours
    while len(body) < length:
        chunk = client.recv(65536)
        if not chunk:
            return None
        body += chunk
    kept = [line for line in headers if not line.lower().startswith((b"connection:", b"keep-alive:"))]
    rewritten = b"\r\n".join([lines[0], *kept, b"Connection: close"]) + HEAD_END
    return _Request(method, target.split("?", 1)[0], rewritten, body[:length])


def _answer(code: int) -> bytes:
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(code, "Error")
    body = f"<html><body><h1>{code} {reason}</h1>fault proxy</body></html>".encode()
    return (f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/html\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


def _reset(connection: socket.socket) -> None:
    """Close with a TCP reset rather than a clean FIN."""
    with contextlib.suppress(OSError):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def _shutdown(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
