"""Live pages on PostgreSQL: a LISTEN on the namespace's channels that wakes the pages'
long polls at once when an execution is started or ends.

Where the store has notifications (``Store.open_listener``: PostgreSQL), two daemon
threads each hold one listening connection, on the ``work`` channel (a start, a retry, a
message that makes an execution due) and the ``finished`` channel (an end), and count
what they hear. A fragment request that says which count it has seen (``?after=N``) waits
until the count moves or ``LONG_POLL_S`` passes (steps and sleeps are not notified: the
page still re-reads that often). Elsewhere the page polls every second.
"""

from __future__ import annotations

import logging
import threading

from hydra.store.base import Store, WakeListener

log = logging.getLogger("hydra.ui")

#: the longest a fragment request waits for a notification before it answers anyway
LONG_POLL_S = 2.0
CHANNELS = ("work", "finished")


class Changes:
    """Counts the notifications of one namespace (see the module's docstring)."""

    def __init__(self, store: Store, namespace: str) -> None:
        self._store = store
        self._namespace = namespace
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.version = 0

    @classmethod
    def open(cls, store: Store, namespace: str) -> Changes | None:
        """Listening threads for ``namespace``, or None where the store cannot notify."""
        if not getattr(store, "supports_notify", False):
            return None
        changes = cls(store, namespace)
        for channel in CHANNELS:
            listener = store.open_listener(namespace, channel)
            if listener is None:
                changes.close()
                return None
            thread = threading.Thread(
                target=changes._listen,
                args=(listener,),
                name=f"hydra-ui-listen-{channel}",
                daemon=True,
            )
            changes._threads.append(thread)
            thread.start()
        return changes

    def _listen(self, listener: WakeListener) -> None:
        try:
            while not self._stop.is_set():
                try:
                    heard = listener.wait(0.5)
                except Exception as exc:  # a lost connection: the pages fall back to polls
                    log.warning("hydra ui: listening failed (%s: %s)", type(exc).__name__, exc)
                    self._stop.wait(1.0)
                    continue
                if heard:
                    with self._cond:
                        self.version += 1
                        self._cond.notify_all()
        finally:
            listener.close()

    def wait(self, after: int, timeout_s: float | None = None) -> int:
        """Block until the count passes ``after`` or ``timeout_s`` (LONG_POLL_S) passes;
        the count."""
        timeout = LONG_POLL_S if timeout_s is None else timeout_s
        with self._cond:
            self._cond.wait_for(lambda: self.version > after or self._stop.is_set(), timeout)
            return self.version

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(5)
