"""Wakes a runner's other workers at once, instead of at their next look at the state directory.

A swap is a conversation between worker processes through files (runner_image.state): the leader writes
control.json, each other worker loads and reports, the leader writes again, each switches and reports.
Every step used to wait for the reader's next poll (20 ms), several times per swap. Now each worker also
listens on a datagram socket and the writer rings the others after each write: the files stay the truth
and the poll stays as the fallback (a ring may be lost: a full buffer, a worker starting), so a ring only
ever makes a step earlier, never changes what happens.

The sockets are in Linux's abstract namespace (no file, no path-length limit, gone with the process),
named after the state directory, so two runners on one host never ring each other's workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import select
import socket


class Doorbell:
    def __init__(self, state_root, pid: int):
        digest = hashlib.sha256(str(state_root).encode()).hexdigest()[:24]
        self._prefix = f"\0acumos-runner-{digest}-".encode()
        self._sock: socket.socket | None = None
        with contextlib.suppress(OSError, AttributeError):  # no AF_UNIX or no abstract names: poll only
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(self._prefix + str(pid).encode())
            self._sock = sock

    def ring(self, pids) -> None:
        """Tell these workers to look at the state directory now (best effort, never blocks)."""
        if self._sock is None:
            return
        for pid in pids:
            with contextlib.suppress(OSError):  # gone, or its buffer is full: it will poll
                self._sock.sendto(b"!", self._prefix + str(pid).encode())

    def wait(self, timeout: float) -> bool:
        """Sleep until rung or `timeout` seconds pass; True when rung. Drains every ring waiting."""
        if self._sock is None:
            select.select([], [], [], timeout)
            return False
        ready, _, _ = select.select([self._sock], [], [], timeout)
        rung = False
        while ready:
            try:
                self._sock.recv(16)
                rung = True
            except (BlockingIOError, InterruptedError):
                break
        return rung

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
