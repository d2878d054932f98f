"""A TCP proxy on 127.0.0.1 that can stop forwarding bytes: a database that freezes.

While paused, connections are still accepted and bytes still arrive in the kernel's
buffers, but nothing reaches the other side: exactly what a client sees of a stopped
database process or a stalled network, where TCP stays up and no answer comes.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_POLL_SECONDS = 0.02


class FreezableProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``pause()`` freezes every connection."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self.port = int(self._listener.getsockname()[1])
        self._running = threading.Event()
        self._running.set()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def pause(self) -> None:
        """Stop forwarding: the database seems frozen to every client of the proxy."""
        self._running.clear()

    def resume(self) -> None:
        """Forward again, starting with whatever waited meanwhile."""
        self._running.set()

    def close(self) -> None:
        self._stopped.set()
        self._running.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            pump = threading.Thread(target=self._pump, args=(client, upstream), daemon=True)
            self._threads.append(pump)
            pump.start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        other = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ)
            selector.register(upstream, selectors.EVENT_READ)
            while not self._stopped.is_set():
                if not self._running.is_set():
                    self._running.wait(_POLL_SECONDS)
                    continue
                for key, _ in selector.select(_POLL_SECONDS):
                    source = key.fileobj
                    assert isinstance(source, socket.socket)
                    try:
                        data = source.recv(65536)
                        if data:
                            other[source].sendall(data)
                            continue
                    except OSError:
                        pass
                    for sock in (client, upstream):
                        with contextlib.suppress(OSError):
                            sock.close()
                    return


@contextmanager
def freezable_proxy(target_host: str, target_port: int) -> Iterator[FreezableProxy]:
    """A running FreezableProxy to the target, closed at the end."""
    proxy = FreezableProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
