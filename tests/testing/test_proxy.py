"""``hydra.testing.proxy.TCPProxy``: forwarding, refusing, cutting; with psycopg and PyMySQL."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from hydra.testing.proxy import TCPProxy
from tests.conftest import StoreURLs


class EchoServer:
    """Echoes what it receives; counts the connections it accepted."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[TCPProxy]:
    with TCPProxy("127.0.0.1", echo.port) as p:
        yield p


def _connect(proxy: TCPProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    return sock


def _roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_forwards_bytes_both_ways(proxy: TCPProxy, echo: EchoServer) -> None:
    assert proxy.port != echo.port
    with _connect(proxy) as a, _connect(proxy) as b:
        assert _roundtrip(a, b"hello") == b"hello"
        big = bytes(range(256)) * 4096  # 1 MiB: more than one recv
        assert _roundtrip(b, big) == big
        assert proxy.connections == 2
    # A client's orderly close is passed on, and the connection is forgotten.
    _wait_for(lambda: proxy.connections == 0)


def test_refuse_refuses_new_connections_only_while_it_lasts(proxy: TCPProxy) -> None:
    with _connect(proxy) as established:
        # Forwarded once: accepted by the proxy (a connection still in the kernel's accept
        # queue when the refusal starts is refused with the rest).
        assert _roundtrip(established, b"first") == b"first"
        proxy.refuse(0.5)
        assert proxy.refusing
        began = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy)
        # An established connection keeps working through a refusal.
        assert _roundtrip(established, b"still here") == b"still here"
        # Back on the same port once the time is up.
        while True:
            try:
                sock = _connect(proxy)
                break
            except ConnectionRefusedError:
                time.sleep(0.01)
        with sock:
            assert _roundtrip(sock, b"back") == b"back"
        waited = time.monotonic() - began
        assert 0.4 < waited < 2.0, waited
        assert not proxy.refusing


def test_refuse_zero_ends_a_refusal(proxy: TCPProxy) -> None:
    proxy.refuse(60)
    with pytest.raises(ConnectionRefusedError):
        _connect(proxy)
    proxy.refuse(0)
    _wait_for(lambda: not proxy.refusing)
    deadline = time.monotonic() + 2
    while True:  # the accept thread reopens the port within milliseconds
        try:
            with _connect(proxy) as sock:
                assert _roundtrip(sock, b"x") == b"x"
            return
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.005)


def test_cut_resets_every_established_connection(proxy: TCPProxy, echo: EchoServer) -> None:
    socks = [_connect(proxy) for _ in range(3)]
    for s in socks:
        assert _roundtrip(s, b"ping") == b"ping"
    assert proxy.cut() == 3
    assert proxy.connections == 0
    for s in socks:
        with s, pytest.raises(OSError):  # reset by peer, or a broken pipe on send
            s.sendall(b"after the cut")
            if not s.recv(10):
                raise ConnectionResetError("closed")
    # New connections work at once after a bare cut.
    with _connect(proxy) as s:
        assert _roundtrip(s, b"new") == b"new"


def test_outage_cuts_and_refuses(proxy: TCPProxy) -> None:
    with _connect(proxy) as old:
        assert _roundtrip(old, b"a") == b"a"
        proxy.outage(0.3)
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy)
        with pytest.raises(OSError):
            old.sendall(b"b")
            if not old.recv(10):
                raise ConnectionResetError("closed")
    time.sleep(0.35)
    _wait_for(lambda: not proxy.refusing)
    deadline = time.monotonic() + 2
    while True:
        try:
            with _connect(proxy) as s:
                assert _roundtrip(s, b"c") == b"c"
            return
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.005)


def test_an_unreachable_target_resets_the_client() -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
    port = free.getsockname()[1]
    try:
        # The reset may come before connect() returns, or at the first send or recv.
        with TCPProxy("127.0.0.1", port) as p, pytest.raises(OSError), _connect(p) as s:
            s.sendall(b"x")
            if not s.recv(10):
                raise ConnectionResetError("closed")
    finally:
        free.close()


def test_close_stops_listening_and_resets_connections(echo: EchoServer) -> None:
    p = TCPProxy("127.0.0.1", echo.port)
    s = _connect(p)
    assert _roundtrip(s, b"x") == b"x"
    p.close()
    p.close()  # idempotent
    with pytest.raises(ConnectionRefusedError):
        _connect(p)
    with s, pytest.raises(OSError):
        s.sendall(b"y")
        if not s.recv(10):
            raise ConnectionResetError("closed")


def test_url_for_and_for_url() -> None:
    url = "postgresql+psycopg://user:secret@db.example:6543/app?options=-csearch_path%3Dx"
    p = TCPProxy.for_url(url)
    try:
        assert p.target == ("db.example", 6543)
        assert p.url_for(url) == (
            f"postgresql+psycopg://user:secret@127.0.0.1:{p.port}/app?options=-csearch_path%3Dx"
        )
    finally:
        p.close()
    with TCPProxy.for_url("mysql+pymysql://root@localhost/test") as m:
        assert m.target == ("localhost", 3306)
    with pytest.raises(ValueError, match="no TCP host"):
        TCPProxy.for_url("sqlite:///x.db")
    with TCPProxy("127.0.0.1", 1) as q, pytest.raises(ValueError, match="negative"):
        q.refuse(-1)


@pytest.mark.parametrize("backend", ["postgres", "mysql"])
def test_drivers_through_the_proxy(backend: str, store_urls: StoreURLs) -> None:
    """psycopg and PyMySQL connect through it, and a cut or a refusal reaches them as
    the connection errors a real outage gives."""
    url = store_urls.url(backend)
    with TCPProxy.for_url(url) as p:
        engine = create_engine(p.url_for(url), poolclass=NullPool)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
                p.cut()
                with pytest.raises(DBAPIError) as cut:
                    conn.execute(text("SELECT 1"))
                assert cut.value.connection_invalidated
            p.refuse(5)
            with pytest.raises(DBAPIError, match=r"(?i)refused"):
                engine.connect()
            p.refuse(0)
            _wait_for(lambda: not p.refusing)
            time.sleep(0.05)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 2")).scalar_one() == 2
        finally:
            engine.dispose()
