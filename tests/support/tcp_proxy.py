"""A real TCP forwarder for outage tests: start and stop it to make a database come and go, or
hang it to make the database stop answering while every connection stays open."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    """Forwards connections from 127.0.0.1:`port` to `upstream` while started.

    The port stays bound from construction to close(), listening only while started: a
    port merely picked as free could meanwhile become some connection's ephemeral port
    (even a client's own connection to it, a TCP self-connect), and start() would fail.
    A bound socket that does not listen refuses connections, as a stopped database does.

    hang() keeps accepting connections and keeps them open, but forwards nothing in either
    direction (a partition, a stuck proxy): what is sent waits, and so does a close. resume()
    forwards what waited, as a healed network delivers what it retransmits.
    """

    def __init__(self, upstream: tuple[str, int], port: int = 0) -> None:
        self.upstream = upstream
        self._reservation: socket.socket | None = _bound_socket(port)
        self.port = int(self._reservation.getsockname()[1])
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()

    def hang(self) -> None:
        """Forward nothing more (connections stay open, new ones are accepted) until resume()."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def start(self) -> None:
        listener, self._reservation = self._reservation or _bound_socket(self.port), None
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones, like a database going down."""
        if self._listener is not None:
            # shutdown() stops the listening and wakes the thread blocked in accept(), while
            # the socket keeps the port, so the reservation can take it over with no gap.
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._reservation = _bound_socket(self.port)
            self._listener.close()
            self._listener = None
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self._connections.clear()

    def close(self) -> None:
        """Stop, and give the port back."""
        self.stop()
        self._flowing.set()  # the pumps of cut connections end (their sockets are closed)
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._connections += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target, self._flowing), daemon=True).start()


def _pump(source: socket.socket, target: socket.socket, flowing: threading.Event) -> None:
    try:
        while data := source.recv(65536):
            flowing.wait()
            target.sendall(data)
    except OSError:
        pass
    finally:
        flowing.wait()
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _bound_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
