"""A TCP relay in front of several server processes, standing in for the reverse proxy.

Like nginx with several upstreams (deploy/nginx.conf resolves `web` to every replica), each new
connection goes to the next server in turn, and one that refuses the connection (a server that
stopped listening to shut down, or is not up yet) is skipped for the next.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
from collections import Counter


class Relay:
    """Round-robin over `ports`, skipping refusals; the test connects to `port`."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = list(ports)
        self.connections: Counter[int] = Counter()  # accepted connections, by server port
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self.listener.getsockname()[1]
        self._turn = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            start, self._turn = self._turn, self._turn + 1
        for offset in range(len(self.ports)):
            port = self.ports[(start + offset) % len(self.ports)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue  # refused: the next server
            upstream.settimeout(None)
            with self._lock:
                self.connections[port] += 1
            done = threading.Barrier(2, action=functools.partial(_close, client, upstream))
            threading.Thread(target=_pipe, args=(client, upstream, done), daemon=True).start()
            _pipe(upstream, client, done)
            return
        _close(client)  # every server refused: so does the relay (the client sees a dropped handshake)

    def close(self) -> None:
        self.listener.close()


def _pipe(source: socket.socket, sink: socket.socket, done: threading.Barrier) -> None:
    """Copy `source` into `sink` until either side ends, then end both directions."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    for sock in (source, sink):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(threading.BrokenBarrierError):
        done.wait(5)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()
