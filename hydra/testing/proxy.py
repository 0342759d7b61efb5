"""``TCPProxy``: a TCP proxy that makes a database unreachable, or drops its connections, on cue.

Put it between a store and its database server to test what a real outage does to the
code above the socket (the driver, SQLAlchemy's pool, hydra's retries), without stopping
a server that other tests share::

    from hydra.testing.proxy import TCPProxy

    with TCPProxy.for_url(url) as proxy:  # listens on 127.0.0.1, forwards to url's server
        store = hydra.SQLStore(proxy.url_for(url))
        ...
        proxy.cut()         # every established connection is reset, on both sides
        proxy.refuse(2.0)   # for 2 s, new connections are refused (ECONNREFUSED)
        proxy.outage(2.0)   # both: the server "restarts" and is back 2 s later

Faults are synchronous: when ``cut()`` returns, the connections it cut are gone; when
``refuse()`` or ``outage()`` returns, the next connect is refused. Connections made outside
a refusal are forwarded byte for byte, whatever the protocol (PostgreSQL, MySQL, anything
over TCP).

How (Linux; macOS and the BSDs have ``SO_REUSEPORT`` too): one thread accepts, two threads
per connection copy bytes. A refusal closes the listening socket; a second socket bound to
the same port with ``SO_REUSEPORT`` (never listening) keeps the port reserved, so the
kernel answers new connections with a reset (as a stopped server's host does) and the
proxy comes back on the same port. A cut sets ``SO_LINGER`` to zero on both sockets of
each connection and closes them: the client and the server each see a reset, as after a
crash or a network failure, not an orderly close.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType

from sqlalchemy.engine import make_url

__all__ = ["TCPProxy"]

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
_CHUNK = 65536
# A linger of 0 s: close() discards unsent data and sends a reset (RST), not a FIN.
_RESET = struct.pack("ii", 1, 0)


class TCPProxy:
    """Forwards ``host:port`` (127.0.0.1, a free port) to ``target_host:target_port``.

    Starts listening at construction. ``close()`` (or leaving the ``with`` block) stops it
    and resets every connection still open.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, int(target_port))
        self.host = host
        self._cond = threading.Condition()
        self._links: set[_Link] = set()
        self._refuse_until = 0.0
        self._closed = False
        # Reserves the port while no socket listens on it (see the module docstring).
        self._holder = _reusable_socket()
        self._holder.bind((host, 0))
        #: the port the proxy listens on
        self.port: int = self._holder.getsockname()[1]
        try:
            self._listener: socket.socket | None = self._listen()
        except BaseException:
            self._holder.close()
            raise
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"hydra-proxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    @classmethod
    def for_url(cls, database_url: str) -> TCPProxy:
        """A proxy to the server of a SQLAlchemy URL (default port of its backend)."""
        url = make_url(database_url)
        port = url.port or _DEFAULT_PORTS.get(url.get_backend_name())
        if url.host is None or port is None:
            raise ValueError(f"{url.render_as_string()!r} names no TCP host and port to proxy")
        return cls(url.host, port)

    def url_for(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the proxy's (password kept)."""
        url = make_url(database_url).set(host=self.host, port=self.port)
        return url.render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"TCPProxy({self.host}:{self.port} -> {self.target[0]}:{self.target[1]})"

    # -- faults -----------------------------------------------------------------------
    def refuse(self, seconds: float) -> None:
        """Refuse new connections for ``seconds`` from now (0 ends a refusal at once).

        Established connections keep working (a client's connect() that the proxy has not
        yet accepted counts as new). Returns at once; connections are accepted again (on
        the same port) as soon as the time is up.
        """
        if seconds < 0:
            raise ValueError(f"seconds must not be negative, got {seconds!r}")
        with self._cond:
            self._refuse_until = time.monotonic() + seconds
            if seconds > 0 and self._listener is not None:
                # From here on the kernel refuses new connections; the accept thread,
                # woken with an error, closes this socket and waits out the refusal.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RD)
            self._cond.notify_all()

    def cut(self) -> int:
        """Reset every established connection, on both sides; returns how many."""
        with self._cond:
            links = list(self._links)
        for link in links:
            link.abort()
        for link in links:
            link.wait_closed()
        return len(links)

    def outage(self, seconds: float) -> None:
        """A server outage: every connection reset, new ones refused for ``seconds``."""
        # Refuse first, so no connection can be made between the cut and the refusal.
        self.refuse(seconds)
        self.cut()

    @property
    def refusing(self) -> bool:
        """True while new connections are refused."""
        with self._cond:
            return time.monotonic() < self._refuse_until

    @property
    def connections(self) -> int:
        """How many connections the proxy forwards right now."""
        with self._cond:
            return len(self._links)

    # -- lifecycle ----------------------------------------------------------------------
    def close(self) -> None:
        """Stop listening and reset every connection."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RD)
            self._cond.notify_all()
        self._acceptor.join(timeout=5)
        self.cut()
        self._holder.close()

    def __enter__(self) -> TCPProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _listen(self) -> socket.socket:
        sock = _reusable_socket()
        try:
            sock.bind((self.host, self.port))
            sock.listen(128)
        except BaseException:
            sock.close()
            raise
        return sock

    def _accept_loop(self) -> None:
        while True:
            with self._cond:
                listener = self._wait_for_listener()
                if listener is None:
                    return
            try:
                client, _ = listener.accept()
            except OSError:
                # Shut down by refuse() or close(): this listening socket is done.
                with self._cond:
                    if self._listener is listener:
                        self._listener = None
                listener.close()
                continue
            with self._cond:
                if self._closed or time.monotonic() < self._refuse_until:
                    _reset(client)  # it raced the refusal: as if refused
                    continue
                link = _Link(self, client)
                self._links.add(link)
            link.start()

    def _wait_for_listener(self) -> socket.socket | None:
        """(Holding the lock.) The listening socket, reopened once a refusal is over;
        None once closed."""
        while not self._closed:
            remaining = self._refuse_until - time.monotonic()
            if remaining > 0:
                self._cond.wait(remaining)
                continue
            if self._listener is None:
                try:
                    self._listener = self._listen()
                except OSError:
                    # Cannot happen while the holder socket reserves the port; if it
                    # does, keep refusing rather than lose the accept thread.
                    self._cond.wait(0.05)
                    continue
            return self._listener
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        return None

    def _forget(self, link: _Link) -> None:
        with self._cond:
            self._links.discard(link)


class _Link:
    """One proxied connection: the client's socket, the server's, and two copy threads."""

    def __init__(self, proxy: TCPProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server: socket.socket | None = None
        self._lock = threading.Lock()
        self._aborted = False
        self._running = 0
        self._closed = threading.Event()

    def start(self) -> None:
        threading.Thread(
            target=self._connect_and_pump, name=f"hydra-proxy-{self.proxy.port}-c", daemon=True
        ).start()

    def _connect_and_pump(self) -> None:
        try:
            server = socket.create_connection(self.proxy.target, timeout=10)
        except OSError:
            self._close_all(reset=True)  # the target is down: the client sees a reset
            return
        server.settimeout(None)
        for sock in (self.client, server):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.server = server
            aborted = self._aborted
            if not aborted:
                self._running = 2
        if aborted:  # cut while connecting to the server
            self._close_all(reset=True)
            return
        threading.Thread(
            target=self._pump,
            args=(server, self.client),
            name=f"hydra-proxy-{self.proxy.port}-s",
            daemon=True,
        ).start()
        self._pump(self.client, server)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(_CHUNK)
                if not data or self._aborted:
                    break
                dst.sendall(data)
            if not self._aborted:
                # An orderly close on one side is passed on (half-close), as TCP would.
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()  # one side reset or failed: reset the other too
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self._close_all(reset=self._aborted)

    def abort(self) -> None:
        """Reset both sides (returns at once; ``wait_closed`` waits for it)."""
        with self._lock:
            self._aborted = True
            socks = [s for s in (self.client, self.server) if s is not None]
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            with contextlib.suppress(OSError):
                # Wakes the copy thread blocked in recv() without sending anything; the
                # last copy thread to stop closes both sockets (with a reset).
                sock.shutdown(socket.SHUT_RD)

    def wait_closed(self, timeout: float = 5.0) -> None:
        if not self._closed.wait(timeout / 2):
            # A copy thread blocked in sendall() (its reader stopped reading) is not woken
            # by SHUT_RD: shut down the write side as well.
            with self._lock:
                socks = [s for s in (self.client, self.server) if s is not None]
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._closed.wait(timeout / 2)

    def _close_all(self, *, reset: bool) -> None:
        for sock in (self.client, self.server):
            if sock is None:
                continue
            if reset:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
            with contextlib.suppress(OSError):
                sock.close()
        self.proxy._forget(self)
        self._closed.set()


def _reusable_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    sock.close()
